"""Pictures of segmentations for the report: a rung's prediction against the ground truth on its best,
median and worst comparison cases (a few slices through the labelled structure for 3D images)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from automed.data.atomic import write_bytes
from automed.data.io import COLOUR_CHANNELS
from automed.data.oof import image_and_truth, saved_prediction
from automed.errors import AutomedError
from automed.report.sections import comparison_ids
from automed.report.tables import comparison_metric
from automed.statistics import case_scores

__all__ = ["OVERLAYS", "chosen_cases", "display_image", "overlay_figure", "write_overlays"]

log = logging.getLogger("automed")

OVERLAYS = "overlays.png"
"""The file, in each segmentation rung's folder, that holds its overlays."""
SLICES = (0.25, 0.5, 0.75)
"""Where the slices of a 3D case lie, as quantiles of the ground truth's foreground along the first axis."""


def chosen_cases(rung: dict[str, Any], scored: list[int]) -> list[tuple[str, str, float]]:
    """``[("best", case id, score), ("median", ...), ("worst", ...)]`` among the rung's comparison cases,
    by mean Dice over the ``scored`` classes (fewer entries when fewer cases)."""
    ids = set(comparison_ids(rung))
    scores = sorted(((s, c) for c, s in case_scores(rung["per_case"], scored).items() if c in ids), reverse=True)
    if not scores:
        return []
    picks = {"best": scores[0], "median": scores[len(scores) // 2], "worst": scores[-1]}
    seen, out = set(), []
    for role, (score, case_id) in picks.items():
        if case_id not in seen:
            seen.add(case_id)
            out.append((role, case_id, score))
    return out


def write_overlays(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write ``rungs/<name>/overlays.png`` for every finished segmentation rung; return ``{rung: path}``.

    The image, label and the rung's out-of-fold mask (``rungs/<name>/oof/``) are read on the run's
    working grid. A rung whose files or data cannot be read gets no picture (logged): the report
    is still written.
    """
    from automed.data.fingerprint import Fingerprint

    scored = [int(k) for k, name in report["dataset"]["classes"].items()
              if name in ((comparison_metric(report["rungs"][0]) or {}).get("classes") or [])] or [
        int(k) for k in report["dataset"]["classes"] if k != "0"]
    cases, fingerprint, loaded, written = None, None, {}, {}
    for rung in report["rungs"]:
        out = folder / "rungs" / rung["name"] / OVERLAYS
        if rung["status"] != "done" or not rung.get("per_case") or not (out.parent / "oof").is_dir():
            out.unlink(missing_ok=True)
            continue
        try:
            if cases is None:
                fingerprint = Fingerprint.from_dict(json.loads((folder / "fingerprint.json").read_text()))
                cases = _dataset_cases(report)
            panels = []
            for role, case_id, score in chosen_cases(rung, scored):
                if case_id not in loaded:
                    loaded[case_id] = image_and_truth(cases[case_id], fingerprint)
                image, truth = loaded[case_id]
                pred = saved_prediction(out.parent / "oof", case_id, fingerprint)
                if pred.shape != truth.shape:
                    raise AutomedError(f"{case_id}: the saved mask's shape {pred.shape} differs from the label's "
                                       f"{truth.shape}")
                panels.append((f"{role}: {case_id}, Dice {score:.3f}", image, truth, pred))
        except (AutomedError, OSError, KeyError, ValueError, TypeError) as exc:
            log.warning("report: no overlays for %s (%s)", rung["name"], exc)
            out.unlink(missing_ok=True)
            continue
        if panels:
            write_bytes(out, overlay_figure(panels, report["dataset"]["classes"], fingerprint.dims,
                                    tuple(fingerprint.channel_names) == COLOUR_CHANNELS))
            written[rung["name"]] = out
    return written


def _dataset_cases(report: dict[str, Any]) -> dict[str, Any]:
    from automed.data.dataset import open_recorded

    dataset = open_recorded(report["dataset"]["path"], report["dataset"]["format"], report.get("recipe"))
    return {case.case_id: case for case in dataset.cases}


def overlay_figure(panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], classes: dict[str, str], dims: int,
            colour: bool) -> bytes:
    """Rows: the chosen cases; columns: slices (3D) or the image (2D). Prediction filled, truth outlined;
    a ``colour`` photograph is shown in colour, any other image by its first channel."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    from automed.report.plots import figure_png, pyplot

    plt = pyplot()
    n_cols = len(SLICES) if dims == 3 else 1
    fig, axes = plt.subplots(len(panels), n_cols, figsize=(2.8 * n_cols + 0.4, 2.8 * len(panels)), squeeze=False)
    for row, (title, image, truth, pred) in enumerate(panels):
        for ax in axes[row]:
            ax.set_axis_off()
        for col, index in enumerate(_slices(truth) if dims == 3 else [None]):
            ax = axes[row][col]
            picture, t, p = (image[:, index], truth[index], pred[index]) if index is not None else (image, truth, pred)
            ax.imshow(display_image(picture, colour), cmap="gray", interpolation="nearest")
            for k in range(1, len(classes)):
                colour = f"C{(k - 1) % 10}"
                fill = np.zeros((*p.shape, 4))
                fill[p == k] = (*to_rgb(colour), 0.35)
                ax.imshow(fill, interpolation="nearest")
                if (t == k).any():
                    ax.contour(t == k, levels=[0.5], colors=[colour], linewidths=1.0)
            ax.set_title(title if index is None else f"{title}\nslice {index}", fontsize=7)
    handles = [Patch(color=f"C{(k - 1) % 10}", label=classes[str(k)]) for k in range(1, len(classes))]
    axes[0][0].legend(handles=handles, loc="upper left", fontsize=6, framealpha=0.7,
                      title="filled: prediction\noutlined: truth", title_fontsize=6)
    return figure_png(fig)


def _slices(truth: np.ndarray) -> list[int]:
    """Slices along the first axis through the labelled structure (the middle ones where nothing is labelled)."""
    z = np.flatnonzero(truth.reshape(truth.shape[0], -1).any(1))
    if not len(z):
        z = np.arange(truth.shape[0])
    return sorted({int(np.quantile(z, q, method="nearest")) for q in SLICES})


def display_image(picture: np.ndarray, colour: bool) -> np.ndarray:
    """A colour photograph as RGB, else its first channel, scaled to its 1-99 percentiles."""
    channels = picture if colour else picture[:1]
    low, high = np.percentile(channels, [1, 99])
    scaled = np.clip((channels - low) / (high - low if high > low else 1.0), 0, 1)
    return np.moveaxis(scaled, 0, -1) if len(scaled) == 3 else scaled[0]
