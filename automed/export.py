"""Models that leave the run folder: a fitted rung as ONNX or TorchScript networks (or the classical
rung's joblib pipeline) plus ``automed_model.json``, everything needed to use them elsewhere.

The ONNX export is checked before it is kept: the exported networks, run by onnxruntime with
automed's own sliding-window inference, predict a real comparison case, and the largest absolute
difference from automed's own probabilities is recorded in the JSON (``check``).
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from automed.data.atomic import file_written_atomically, folder_written_atomically
from automed.environment import automed_version
from automed.errors import AutomedError, RunFolderError
from automed.ladder.outputs import check_output_folder, refuse_overlap, write_output_record
from automed.rungs.segmentation.classical import CONTEXT_MODEL

__all__ = ["FORMATS", "export_run"]

log = logging.getLogger("automed")

FORMATS = ("onnx", "torchscript", "joblib")
ONNX_OPSET = 17
"""ONNX opset of the exported networks: InstanceNormalization and every MONAI U-Net operator are in it,
and onnxruntime releases of the last three years run it."""
MAX_CHECK_DIFFERENCE = 1e-3
"""Largest difference in probabilities accepted between onnxruntime and torch on the check case."""


def export_run(run_folder: str | Path, out: str | Path, rung: str | None = None, format: str = "onnx",
               overwrite: bool = False) -> dict[str, Any]:
    """Export a fitted rung of ``run_folder`` into the folder ``out``.

    Parameters
    ----------
    run_folder : path
        A finished run.
    out : path
        Folder to create (atomically); an earlier export there is replaced only with ``overwrite``, and
        only while it holds nothing but the files its ``automed_model.json`` lists (under ``written``).
    rung : str, optional
        Rung to export; default the report's recommended rung.
    format : {"onnx", "torchscript", "joblib"}
        ``onnx`` and ``torchscript`` for deep rungs (one file per network), ``joblib`` for the classical rung.

    Returns
    -------
    dict
        The content of ``out/automed_model.json``: ``files`` the model files, ``written`` every file of ``out``.

    Raises
    ------
    RunFolderError
        The rung cannot be exported in ``format`` (an ensemble, a classical rung as a network), or ``out`` is taken.
    """
    from automed.ladder.predict import _load_rung, _open_run

    run_folder, out = Path(run_folder), Path(out)
    if format not in FORMATS:
        raise RunFolderError(f"{out}: unknown export format {format!r}; choose one of {list(FORMATS)}.")
    report, name = _open_run(run_folder, rung)
    refuse_overlap(out, {"the run folder": run_folder})
    check_output_folder(out, overwrite, "export")
    model = _load_rung(run_folder, name, report["task"], tta=True)
    kind = _kind(model, name, format)
    fingerprint = json.loads((run_folder / "fingerprint.json").read_text())
    record = {"automed": automed_version(), "run": str(run_folder.resolve()), "rung": name, "task": report["task"],
              "format": format, "classes": report["dataset"]["classes"], **_preprocessing(fingerprint)}
    with folder_written_atomically(out) as staging:
        if kind == "pipeline":
            files = [f for f in ("model.joblib", CONTEXT_MODEL) if (run_folder / "rungs" / name / f).is_file()]
            for file in files:
                with file_written_atomically(staging / file) as tmp:
                    shutil.copyfile(run_folder / "rungs" / name / file, tmp)
            second = f" and, for {CONTEXT_MODEL}, the first model's smoothed probabilities (see auto_context)"
            record.update(files=files, use=(
                "joblib.load gives the fitted scikit-learn/LightGBM model; its inputs are automed's voxel features "
                f"(see features){second if CONTEXT_MODEL in files else ''}, so it is used through automed: "
                "automed.load(run).predict(...)"),
                auto_context=(report_rung(report, name).get("details") or {}).get("auto_context"),
                features=(report_rung(report, name).get("details") or {}).get("features"),
                postprocessing=getattr(model, "postprocessing_", None))
        else:
            networks = _networks(model, kind)
            files = [_write_network(net, example, staging / f"network_{i}.{'onnx' if format == 'onnx' else 'pt'}",
                                    format) for i, (net, example) in enumerate(zip(networks, _examples(model, kind)))]
            record.update(files=files, **_network_contract(model, kind, report))
            if format == "onnx":
                record["check"] = _check_onnx(model, name, kind, [staging / f for f in files], report, run_folder)
        record = write_output_record(staging, "export", record)
    log.info("exported rung %s of %s as %s into %s", name, run_folder, format, out)
    return record


def report_rung(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in report["rungs"] if r["name"] == name)


def _kind(model: Any, name: str, format: str) -> str:
    """``"segmentation"`` or ``"classification"`` (networks) or ``"pipeline"``, as the rung declares
    (:attr:`automed.rungs.base.Rung.export_as`); raises where it cannot be exported or ``format`` cannot hold it."""
    rung = type(model)
    if rung.combines_others:
        raise RunFolderError(f"rung {name!r} combines other rungs' models, which no single {format} file holds; "
                             f"export its members one by one (--rung NAME).")
    if rung.export_as is None:
        raise RunFolderError(f"rung {name!r} ({rung.__name__}) declares no export; use it through automed: "
                             "automed.load(RUN).predict(...) or `automed predict RUN ...`.")
    kind = rung.export_as.removesuffix("_network")
    if (kind == "pipeline") != (format == "joblib"):
        if kind == "pipeline":
            raise RunFolderError(f"rung {name!r} is a classical pipeline (hand-made image features, then a "
                                 f"scikit-learn/LightGBM model) and cannot be exported to {format}: ONNX and TorchScript "
                                 "hold networks, not scikit-image/pyradiomics feature extraction. Use --format joblib.")
        raise RunFolderError(f"rung {name!r} is a network; --format joblib is for the classical rung. Use --format onnx "
                             "or torchscript.")
    return kind


def _networks(model: Any, kind: str) -> list[Any]:
    nets = model.models_ if kind == "segmentation" else model.members_
    return [net.to("cpu").eval() for net in nets]


def _examples(model: Any, kind: str) -> list[Any]:
    """One example input per network: a training-patch-sized window (segmentation), a whole image (classification)."""
    import torch

    if kind == "segmentation":
        shape = (2, model.n_channels_, *model.config_.patch)
    elif model.input_shape_ is None:
        raise RunFolderError(f"rung {model.name!r} was fitted by an automed that did not record its input size, "
                             "which an exported network needs; refit the run to export it.")
    else:
        shape = (2, model.in_channels_, *model.input_shape_)
    nets = model.models_ if kind == "segmentation" else model.members_
    return [torch.zeros(shape) for _ in nets]


def _write_network(net: Any, example: Any, path: Path, format: str) -> str:
    """Write one network; the batch axis is free (sliding windows come in batches of any size)."""
    import torch

    # the exporter warns that instance norm uses the input's statistics: that is what InstanceNorm without
    # running statistics does in eval mode too, so the warning is noise for these networks
    # torch writes these files from C++, which may not report a full disk: checked after
    with torch.no_grad(), warnings.catch_warnings(), file_written_atomically(path, trusted=False) as tmp:
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if format == "onnx":
            torch.onnx.export(net, (example,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        else:
            torch.jit.trace(net, example).save(str(tmp))
    return path.name


def _preprocessing(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What an image must go through before the model: channels, grid, normalisation, labels.

    A classification run's images are only resized and standardised (see ``input``); its
    fingerprint names the channels and whether colour was read as luminance.
    """
    if "channel_names" not in fingerprint:  # a classification run
        return {"n_channels": fingerprint.get("n_channels"), "dims": fingerprint.get("dims"),
                "colour_as_luminance": fingerprint.get("colour_as_luminance")}
    return {"channels": fingerprint["channel_names"], "dims": fingerprint["dims"],
            "target_spacing": fingerprint.get("target_spacing"),
            "normalisation": {"per_channel": fingerprint.get("channel_normalization") or [fingerprint["normalization"]],
                              "dataset_intensity": fingerprint.get("intensity"),
                              "rules": "zscore: per case (x - mean) / std; ct: clip to dataset p00_5..p99_5, then "
                                       "(x - dataset mean) / dataset std; rgb: x / 255 (65535 for 16-bit); minmax: per "
                                       "case to [0, 1]; none: as stored"},
            "label_mapping": {"raw_value_to_class": fingerprint.get("label_mapping")}}


def _network_contract(model: Any, kind: str, report: dict[str, Any]) -> dict[str, Any]:
    """How the networks are called and combined."""
    if kind == "classification":
        return {"input": {"name": "image", "layout": "N, C, H, W", "shape": [model.in_channels_, *model.input_shape_],
                          "standardise": {"mean": np.asarray(model.mean_).tolist(),
                                          "std": np.asarray(model.std_).tolist()}},
                "output": {"name": "logits", "layout": "N, classes", "activation": "softmax over axis 1"},
                "combine": "mean of the members' softmax probabilities",
                "threshold": None if model.threshold_ is None else float(model.threshold_),
                "class_order": list(model.classes_)}
    config = model.config_
    return {"input": {"name": "image", "layout": "N, C, *spatial (array axis order)", "dtype": "float32",
                      "window": list(config.patch), "spatial_dims": config.spatial_dims,
                      "slice_axis": model._settings.get("axis")},
            "output": {"name": "logits", "layout": "N, classes, *spatial", "activation": "softmax over axis 1"},
            "inference": {"sliding_window": {"size": list(config.patch), "overlap": 0.5, "blend": "gaussian"},
                          "mirroring": "average over flips of every spatial axis combination" if model.params.tta
                          else None},
            "combine": "mean of the networks' softmax probabilities, then argmax",
            "postprocessing": model.postprocessing_}


class _OnnxNetwork:
    """An onnxruntime session called like a torch network, so automed's own inference can drive it."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def eval(self) -> _OnnxNetwork:
        return self

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.from_numpy(self.session.run(None, {"image": x.detach().cpu().float().numpy()})[0])


def _check_onnx(model: Any, name: str, kind: str, files: list[Path], report: dict[str, Any],
                run_folder: Path) -> dict[str, Any]:
    """Probabilities of one real case from the exported files (onnxruntime) against automed's own."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise AutomedError("checking an ONNX export needs onnxruntime: pip install 'automed[export]'") from exc
    import torch

    sessions = [_OnnxNetwork(f) for f in files]
    if kind == "segmentation":
        case_id, image = _check_case(report, run_folder)
        from automed.deep.inference import predict_proba

        cpu, config, axis = torch.device("cpu"), model.config_, model._settings.get("axis")
        ours = np.mean([predict_proba(net, image, config.patch, axis, cpu) for net in _networks(model, kind)], axis=0)
        theirs = np.mean([predict_proba(s, image, config.patch, axis, cpu) for s in sessions], axis=0)
    else:
        case_id, images = _check_images(model, report)
        with torch.no_grad():
            x = torch.from_numpy(images).float()
            ours = np.mean([torch.softmax(net(x), 1).numpy() for net in _networks(model, kind)], axis=0)
            theirs = np.mean([torch.softmax(s(x), 1).numpy() for s in sessions], axis=0)
    difference = float(np.abs(ours - theirs).max())
    if difference > MAX_CHECK_DIFFERENCE:
        raise AutomedError(f"the ONNX export of {name} differs from automed's own "
                           f"prediction on {case_id} by {difference:.2e} in probability (> {MAX_CHECK_DIFFERENCE}); "
                           "nothing was written.")
    return {"case": case_id, "max_abs_difference_probability": difference, "onnxruntime": onnxruntime.__version__,
            "what": "softmax probabilities of the whole case, sliding windows without mirroring" if kind == "segmentation"
            else "softmax probabilities of the images"}


def _check_case(report: dict[str, Any], run_folder: Path) -> tuple[str, np.ndarray]:
    """The first comparison case of the run, normalised on the working grid."""
    from automed.data.dataset import open_recorded
    from automed.data.fingerprint import Fingerprint
    from automed.data.loading import load_case
    from automed.data.normalize import normalize
    from automed.report.sections import comparison_ids

    fingerprint = Fingerprint.from_dict(json.loads((run_folder / "fingerprint.json").read_text()))
    _data_present(report)
    dataset = open_recorded(report["dataset"]["path"], report["dataset"]["format"], report.get("recipe"))
    cases = {c.case_id: c for c in dataset.cases}
    rung = report_rung(report, report["best_rung"]) if report.get("best_rung") else report["rungs"][0]
    case_id = next((c for c in comparison_ids(rung) if c in cases), next(iter(cases)))
    loaded = load_case(cases[case_id], fingerprint.n_channels, fingerprint.channels_in_one_file,
                       fingerprint.target_spacing)
    return case_id, normalize(loaded.image, fingerprint)


def _check_images(model: Any, report: dict[str, Any]) -> tuple[str, np.ndarray]:
    """The first test images of a classification run, as the rung feeds them to its networks."""
    from automed.data.classification import open_classification
    from automed.deep.classification import image_arrays, standardize

    recipe = report.get("recipe") or {}
    _data_present(report)
    dataset = open_classification(report["dataset"]["path"], report["dataset"]["format"],
                                  recipe.get("colour") == "rgb", recipe.get("class_order"))
    test = [c for c in dataset.cases if c.split == "test"][:4] or list(dataset.cases[:4])
    arrays = image_arrays(dataset, test, model.input_shape_, model.params.max_side)
    return ", ".join(c.case_id for c in test), standardize(model._images(arrays), model.mean_, model.std_)


def _data_present(report: dict[str, Any]) -> None:
    """Raise unless the run's data, on which the export is checked, is where the run found it."""
    path = Path(report["dataset"]["path"])
    if not path.exists():
        raise RunFolderError(f"{path}: the run's data is not there any more, and an ONNX export is checked on one of "
                             "its cases; put it back, or export with --format torchscript (not checked).")
