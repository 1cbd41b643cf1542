"""Transfer rungs: weights from a file the test makes, clear errors for wrong or corrupt files, no fake transfer."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.errors import DataError
from test_classification import FAST, make_npz


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torch
    from torchvision.models import get_model

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for arch, extra in (("vgg16", {}), ("inception_v3", {"aux_logits": True, "init_weights": False})):
        torch.save(get_model(arch, weights=None, **extra).state_dict(), folder / f"{arch}.pth")
    (folder / "corrupt.pth").write_bytes(b"not a checkpoint at all" * 100)
    torch.save({"a": [1, 2, 3]}, folder / "not_state.pth")
    return folder


ARCHS = {"vgg16": "automed.nets.vgg16:VGG16", "inception_v3": "automed.nets.inception_v3:InceptionV3"}


def test_backbones_load_from_a_saved_state_dict(weights):
    import torch

    from automed.deep.transfer import pretrained_state_dict
    from automed.nets.transfer_net import transfer_net
    from automed.nets import architecture

    for name, path in ARCHS.items():
        state = pretrained_state_dict(architecture(path), str(weights / f"{name}.pth"))
        net = transfer_net(architecture(path), state, "f", 2, in_channels=1).eval()
        with torch.no_grad():
            assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 2)
        key = "features.0.weight" if name == "vgg16" else "Conv2d_1a_3x3.conv.weight"
        assert torch.equal(net.backbone.state_dict()[key], state[key])


@pytest.mark.parametrize("file, arch, message", [
    ("corrupt.pth", "vgg16", "not a readable torch state dict"),
    ("not_state.pth", "vgg16", "not a state dict"),
    ("missing.pth", "vgg16", "pretrained weights file not found"),
    ("inception_v3.pth", "vgg16", "does not hold vgg16 weights"),
])
def test_wrong_or_corrupt_weights_fail_clearly(weights, file, arch, message):
    from automed.deep.transfer import pretrained_state_dict
    from automed.nets.transfer_net import transfer_net
    from automed.nets import architecture

    with pytest.raises(DataError, match=message) as info:
        transfer_net(architecture(ARCHS[arch]), pretrained_state_dict(architecture(ARCHS[arch]), str(weights / file)),
                     str(weights / file), 2, 1)
    assert file in str(info.value)


def test_wrong_weights_file_exits_1_before_training(weights, tmp_path):
    data = make_npz(tmp_path / "toy.npz")
    args = ["fit", str(data), "--task", "classification", "--out", str(tmp_path / "run"), "--rungs", "vgg16",
            "--pretrained-weights", f"vgg16={weights / 'corrupt.pth'}", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "corrupt.pth: not a readable torch state dict" in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial" / "rungs" / "vgg16" / "result.json").exists()


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_without_imagenet_weights_the_rung_is_skipped_or_labelled_scratch(monkeypatch, tmp_path):
    import urllib.error

    from torchvision.models import get_model_weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(type(get_model_weights("inception_v3").IMAGENET1K_V1), "get_state_dict", offline)
    data = make_npz(tmp_path / "toy.npz")
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST}, {"name": "inception_v3"}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs/inception_v3/result.json").read_text())
    assert result["status"] == "skipped" and "could not be obtained" in result["reason"]


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_inception_frozen_transfer_fits_and_is_judged(weights, tmp_path):
    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 20))
    params = {"weights": str(weights / "inception_v3.pth"), "modes": ["frozen"], "n_trials": 0, "max_epochs": 3,
              "min_epochs": 1}
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST}, {"name": "inception_v3", "params": params}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs/inception_v3/result.json").read_text())
    assert result["status"] == "done", result.get("reason")
    assert result["details"]["initialisation"].startswith("pretrained") and result["details"]["config"]["mode"] == "frozen"
    assert result["gain_vs_baseline"]["vs"] == "classical" and result["gain_vs_baseline"]["n"] == 20
    preds = run.predict(data, tmp_path / "p.csv", rung="inception_v3")
    assert len(preds[0].read_text().splitlines()) == 1 + 40 + 12 + 20


def test_scratch_fallback_is_labelled_and_only_fine_tunes(monkeypatch):
    import urllib.error

    from torchvision.models import get_model_weights

    from automed.rungs import rung_class
    from automed.rungs.classification.transfer import TransferParams

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(type(get_model_weights("inception_v3").IMAGENET1K_V1), "get_state_dict", offline)
    rung = rung_class("inception_v3", "classification")(TransferParams(without_weights="scratch"))
    assert rung._load_weights({}) is None
    assert rung._state is None and rung._modes == ("finetune",)
    assert "NOT transfer" in rung._initialisation


def test_a_resumed_or_replayed_plan_loads_its_weights_in_fit(weights, monkeypatch):
    """The runner hands a saved or pinned plan to fit without calling plan(), where the weights were loaded."""
    from automed.rungs import rung_class
    from automed.rungs.base import RungPlan
    from automed.rungs.classification.deep import DeepClassifierRung
    from automed.rungs.classification.transfer import TransferParams

    seen = {}
    monkeypatch.setattr(DeepClassifierRung, "fit", lambda rung, context, plan=None: seen.setdefault("state", rung._state))
    rung = rung_class("vgg16", "classification")(TransferParams(weights=str(weights / "vgg16.pth")))
    rung.fit(None, RungPlan(60.0, settings={"modes": ["frozen"]}))
    assert set(seen["state"]) and rung._modes == ("frozen",)


@pytest.mark.slow
def test_vgg16_fine_tuning_trains_the_backbone(weights, tmp_path):
    import torch

    data = make_npz(tmp_path / "toy.npz", sizes=(24, 8, 12))
    params = {"weights": str(weights / "vgg16.pth"), "modes": ["finetune"], "n_trials": 0, "max_epochs": 1,
              "min_epochs": 1, "batch_sizes": [8]}
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, rungs=[{"name": "vgg16", "params": params}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs/vgg16/result.json").read_text())
    assert result["status"] == "done" and result["details"]["config"]["mode"] == "finetune"
    (tuned,) = torch.load(run.folder / "rungs/vgg16/model.pt", weights_only=True)["members"]
    start = torch.load(weights / "vgg16.pth", weights_only=True)
    assert not torch.equal(tuned["backbone.features.0.weight"], start["features.0.weight"])
