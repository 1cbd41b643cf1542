"""``quality.html`` beside a segmentation run's predictions: the flagged cases, most suspect first, each with its
reason and a picture of its prediction beside the model's uncertainty."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

__all__ = ["MAX_PAGE_CASES", "flagged_picture", "quality_page"]

MAX_PAGE_CASES = 50
"""Flagged cases pictured on the page (the most suspect)."""


def flagged_picture(image: np.ndarray, pred: np.ndarray, uncertainty: np.ndarray, colour: bool) -> bytes:
    """PNG bytes: the image with the predicted classes outlined, and the per-voxel uncertainty (0-1) beside it;
    for a volume, the slice along the first axis where the model is most unsure."""
    from automed.report.overlays import display_image
    from automed.report.plots import figure_png, pyplot

    if pred.ndim == 3:
        index = int(np.argmax(uncertainty.reshape(uncertainty.shape[0], -1).sum(axis=1)))
        image, pred, uncertainty = image[:, index], pred[index], uncertainty[index]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
    for ax in axes:
        ax.set_axis_off()
    axes[0].imshow(display_image(image, colour), cmap="gray", interpolation="nearest")
    for k in range(1, int(pred.max()) + 1):
        if (pred == k).any():
            axes[0].contour(pred == k, levels=[0.5], colors=[f"C{(k - 1) % 10}"], linewidths=1.0)
    axes[0].set_title("prediction", fontsize=8)
    shown = axes[1].imshow(uncertainty, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_title("uncertainty (entropy)", fontsize=8)
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    return figure_png(fig)


def quality_page(run: str, rung: str, counts: str, bad: str | None, flagged: list[tuple[Any, bytes | None]]) -> str:
    """The page: ``flagged`` are (assessment, picture) pairs, most suspect first."""
    import jinja2

    def number(value: float | None, digits: int = 2) -> str:
        return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"

    cases = [{"case_id": a.case_id, "flag": a.flag, "reason": a.reason, "score": number(a.score, 0),
              "percentile": number(a.distance_percentile, 0), "entropy": number(a.values.get("entropy")),
              "structure": number(a.values.get("structure"), 1),
              "png": base64.b64encode(png).decode() if png else None} for a, png in flagged]
    env = jinja2.Environment(loader=jinja2.PackageLoader("automed.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    return env.get_template("quality.html").render(run=run, rung=rung, counts=counts, bad=bad, cases=cases)
