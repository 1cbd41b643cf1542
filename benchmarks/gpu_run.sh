#!/usr/bin/env bash
# The one prepared GPU run of issue 39, for a lent GPU machine that has torch but not automed's other packages.
#
#   benchmarks/gpu_run.sh          versions, `pytest -m gpu tests/test_gpu.py`, benchmarks/gpu_check.py
#   benchmarks/gpu_run.sh ladder   the hippocampus ladder (examples/hippocampus) under --budget 5min
#   benchmarks/gpu_run.sh prepare  (on the CPU machine, once) build .whl/site312.tar.xz from the venv's versions
#
# Then, with the device tool: command `OUT=$OUT bash benchmarks/gpu_run.sh`, carry [".whl", "automed.egg-info"],
# timeout_s about 345 (pytest 130 s and gpu_check 180 s at most, set by GPU_RUN_PYTEST_S and GPU_RUN_CHECK_S).
#
# The packages torch's image lacks (monai, optuna, SQLAlchemy, alembic, colorlog, Mako, LightGBM, SimpleITK)
# travel as one xz archive of a `pip install --target` for Python 3.12, .whl/site312.tar.xz (xz: the SimpleITK
# wheel alone is 53 MB, the archive of all of them 36 MB, under the 64 MiB a call may carry); automed runs
# from the tree (PYTHONPATH), its metadata from the carried automed.egg-info. pyradiomics has no wheel for
# Python 3.12, so nothing here uses the radiomics features. Everything lands in $OUT: the log, gpu_check.json,
# the pytest report and the runs' report.json files in one archive.
set -u -o pipefail
OUT=${OUT:-/tmp/gpu_run_out}
SITE=${GPU_RUN_SITE:-/tmp/site}
PYTHON=${PYTHON:-python3}
MODE=${1:-checks}
if [ "$MODE" = prepare ]; then  # needs pip and the registry: run it where automed's venv was built
  wheels=$(mktemp -d) site=$(mktemp -d)
  for name in monai optuna SQLAlchemy alembic colorlog Mako lightgbm SimpleITK; do
    echo "$name==$(.venv/bin/python -c "from importlib.metadata import version; print(version('$name'))")"
  done > "$wheels/requirements.txt"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheels" -r "$wheels/requirements.txt" || exit 1
  python3 -m pip install -q --no-deps --no-compile --no-index --target "$site" --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --only-binary=:all: "$wheels"/*.whl || exit 1
  grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
  mkdir -p .whl && tar -C "$site" -cf - . | xz -T2 -6 > .whl/site312.tar.xz && rm -rf "$wheels" "$site"
  ls -l .whl/site312.tar.xz
  exit 0
fi
mkdir -p "$OUT/reports"
export PYTHONUNBUFFERED=1
started=$(date +%s)
{
  if [ -f .whl/site312.tar.xz ] && [ ! -d "$SITE/SimpleITK" ]; then
    mkdir -p "$SITE"
    tar -C "$SITE" -xJf .whl/site312.tar.xz || "$PYTHON" -c \
      "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='fully_trusted')" \
      .whl/site312.tar.xz "$SITE" || exit 1
  fi
  export PYTHONPATH="$SITE:$PWD"
  echo "unpacked in $(( $(date +%s) - started )) s"
  "$PYTHON" -c "
import torch, sys
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'cudnn', torch.backends.cudnn.version(), 'available', torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory / 2**30, 'GiB')
print('get_per_process_memory_fraction', hasattr(torch.cuda, 'get_per_process_memory_fraction'))
import monai, optuna, SimpleITK, lightgbm, sklearn, numpy, automed.environment as e
print('monai', monai.__version__, 'optuna', optuna.__version__, 'SimpleITK', SimpleITK.Version_VersionString(),
      'lightgbm', lightgbm.__version__, 'sklearn', sklearn.__version__, 'numpy', numpy.__version__,
      'automed', e.automed_version())
" || exit 1
  nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv 2>/dev/null
  if [ "$MODE" = ladder ]; then
    timeout 420 "$PYTHON" -m automed fit examples/hippocampus --out /tmp/hippo_5min --budget 5min
    echo "ladder rc=$? after $(( $(date +%s) - started )) s"
    cp /tmp/hippo_5min/report.json "$OUT/reports/hippocampus_5min.report.json"
    cp /tmp/hippo_5min/report.md "$OUT/reports/hippocampus_5min.report.md"
  else
    timeout "${GPU_RUN_PYTEST_S:-150}" "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider -rfEs \
      --junitxml="$OUT/pytest_gpu.xml" tests/test_gpu.py
    echo "pytest rc=$? after $(( $(date +%s) - started )) s"
    timeout "${GPU_RUN_CHECK_S:-200}" "$PYTHON" benchmarks/gpu_check.py --keep "$OUT/reports" \
      --out "$OUT/gpu_check.json" ${GPU_CHECK_ARGS:-}
    echo "gpu_check rc=$? after $(( $(date +%s) - started )) s"
  fi
} 2>&1 | tee "$OUT/gpu_run_$MODE.log"
tar -C "$OUT" -czf "$OUT/reports_$MODE.tar.gz" reports && rm -rf "$OUT/reports"
