# Quick start: `make demo` then `make test`. Every install step lives here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are installed as a matched pair first, so pip never pulls a mismatched build.
TORCH_PAIR := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-all benchmark clean

$(BIN)/automed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PAIR)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/automed
	$(BIN)/automed fit --task segmentation examples/hippocampus --out runs/demo --overwrite --budget 10min
	$(BIN)/automed audit runs/demo
	@echo "Open runs/demo/report.html (or read runs/demo/report.md)."

# the slowest tests are listed at the end of every run, so a test that grows slow is seen
test: $(BIN)/automed
	$(BIN)/pytest -n 2 -q --durations=25

test-all: $(BIN)/automed
	$(BIN)/pytest -n 2 -q -m '' --durations=25

benchmark: $(BIN)/automed
	$(BIN)/python benchmarks/classical_segmentation.py
	$(BIN)/python benchmarks/classical_classification.py
	# the deep ladders under their budgets: about 60 + 20 minutes (segmentation), 30 + 20 (classification)
	$(BIN)/python benchmarks/deep_segmentation.py
	$(BIN)/python benchmarks/deep_classification.py
	# colour and multi-modal data: 3 x 20 min (Kvasir-SEG, PH2 in colour and in grey), 10 min (PH2 diagnosis), 30 min (BraTS)
	$(BIN)/python benchmarks/colour_segmentation.py
	$(BIN)/python benchmarks/colour_classification.py
	$(BIN)/python benchmarks/multimodal_segmentation.py
	# CT-sized volumes (about 40 min), CPU training levers (about 15 min)
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/cpu_training.py
	# side by side with nnU-Net v2 (its own venv; hours: run its tools and times apart with --tools/--minutes)
	$(BIN)/python benchmarks/vs_nnunet.py
	# the GPU path (about 10 minutes on one GPU; --device cpu runs a smaller check without one)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) runs .pytest_cache
