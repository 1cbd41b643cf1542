"""The picture of an audit's most suspect cases: thumbnails with their label (classification), or the label
outlined over a rung's out-of-fold mask (segmentation)."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from automed.audit.inputs import AuditInputs
from automed.audit.records import Audit
from automed.data.io import COLOUR_CHANNELS

__all__ = ["MAX_PICTURED", "audit_picture"]

MAX_PICTURED = 6
"""Suspect cases drawn (the most suspect ones)."""


def audit_picture(inputs: AuditInputs, audit: Audit) -> bytes | None:
    """PNG bytes of the most suspect cases; None when no case is suspect."""
    suspects = audit.suspects[:MAX_PICTURED]
    if not suspects:
        return None
    if audit.task == "segmentation":
        return _segmentation(inputs, suspects)
    return _thumbnails(inputs, suspects)


def _caption(case: Any) -> str:
    return "\n".join(textwrap.wrap(f"{case.case_id} ({case.split}): {case.reasons[0]}", 38)[:4])


def _thumbnails(inputs: AuditInputs, suspects: tuple[Any, ...]) -> bytes:
    from automed.data.classification import load_image
    from automed.report.overlays import display_image
    from automed.report.plots import figure_png, pyplot

    dataset = inputs.run.opened.dataset
    cases = {c.case_id: c for c in dataset.cases}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(suspects), figsize=(2.6 * len(suspects), 3.4), squeeze=False)
    for ax, suspect in zip(axes[0], suspects):
        case = cases[suspect.case_id]
        image = load_image(dataset, case)
        if image.ndim == 4:  # a volume: its middle slice
            image = image[:, image.shape[1] // 2]
        ax.imshow(display_image(image, dataset.n_channels == 3), cmap="gray", interpolation="nearest")
        ax.set_title(f"label {case.label}\n{_caption(suspect)}", fontsize=6)
        ax.set_axis_off()
    return figure_png(fig)


def _segmentation(inputs: AuditInputs, suspects: tuple[Any, ...]) -> bytes:
    from automed.data.oof import image_and_truth, saved_prediction
    from automed.report.overlays import overlay_figure

    fingerprint = inputs.run.opened.fingerprint
    cases = {c.case_id: c for c in inputs.run.opened.dataset.cases}
    panels = []
    for suspect in suspects:
        image, truth = image_and_truth(cases[suspect.case_id], fingerprint)
        rung = next((r for r in inputs.trained if (inputs.folder / "rungs" / r.name / "oof").is_dir()
                     and suspect.case_id in {c["case_id"] for c in r.per_case}), None)
        pred = (np.zeros_like(truth) if rung is None else
                saved_prediction(inputs.folder / "rungs" / rung.name / "oof", suspect.case_id, fingerprint))
        panels.append((f"{_caption(suspect)}\n(filled: {rung.name if rung else 'no'} out-of-fold mask)",
                       image, truth, pred))
    return overlay_figure(panels, {str(k): v for k, v in fingerprint.classes.items()}, fingerprint.dims,
                          tuple(fingerprint.channel_names) == COLOUR_CHANNELS)
