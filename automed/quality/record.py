"""The run's quality record (``quality.json``, written when the fit finishes) and the assessment of one predicted
case against it: how far its image is from the training images, its quality score, and a flag with the reason."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from automed._jsonio import write_json
from automed.quality.calibration import Calibration
from automed.quality.reference import ImageReference

__all__ = ["COMPONENT_NOTES", "FLAGS", "OOD_PERCENTILE", "QUALITY_CSV", "QUALITY_HTML", "QUALITY_JSON", "UNCERTAINTY",
           "Assessment", "QualityRecord",
           "flag_counts", "quality_columns", "read_quality", "write_quality_table"]

QUALITY_JSON = "quality.json"
QUALITY_CSV = "quality.csv"
QUALITY_HTML = "quality.html"
UNCERTAINTY = "uncertainty"
"""The folder, among the predictions, of the per-voxel uncertainty images (``--uncertainty-maps``)."""
OOD_PERCENTILE = 99.0
"""An image further from the training images than this percentage of them are from one another is out of
distribution."""
NOTABLE_PERCENTILE = 90.0
"""A component above this percentile of the validation cases' is named in a review's reason."""
FLAGS = ("ok", "review", "out_of_distribution")
COMPONENT_NOTES = {
    "distance": "how far the image's descriptors lie from its nearest training images (robust SDs, root mean square)",
    "entropy": "the mean normalised entropy of the class probabilities where the model sees any structure "
               "(foreground probability >= 0.1)",
    "structure": "the largest robust z-score (either sign) of a predicted class's log volume or number of pieces "
                 "against the training labels",
    "uncertainty": "1 - (the highest class probability - the second highest)",
    "disagreement": "the mean standard deviation of the ensemble members' class probabilities",
}
_SAYS = {
    "distance": "the image is further from the training images",
    "entropy": "the model is less sure of its segmentation",
    "structure": "the predicted structure's size or number of pieces is less usual",
    "uncertainty": "the model is less sure of its class",
    "disagreement": "the ensemble's members disagree more",
}


@dataclass(frozen=True)
class QualityRecord:
    """What predictions are judged against.

    Attributes
    ----------
    task : str
    reference : ImageReference
        The training images' descriptors.
    rungs : dict of str to Calibration
        Each finished rung's score calibration on the validation cases.
    label_shapes : dict
        Segmentation: per foreground class index (str), the robust centre and scale of the training labels' log
        volume and number of pieces (``{"volume": [centre, scale], "pieces": [...]}``).
    seconds : float
        What computing the record took.
    notes : tuple of str
        What the record leaves out, and why.
    """

    task: str
    reference: ImageReference
    rungs: dict[str, Calibration]
    label_shapes: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def assess(self, rung: str, case_id: str, descriptors: np.ndarray, values: Mapping[str, float]) -> Assessment:
        """The assessment of a case predicted by ``rung``: its image ``descriptors`` and the rung's other component
        ``values`` (see :data:`COMPONENT_NOTES`)."""
        distance = self.reference.distance(descriptors)
        percentile = self.reference.percentile(distance)
        values = {**values, "distance": distance}
        calibration = self.rungs.get(rung)
        score = calibration.score(values) if calibration else math.nan
        if percentile >= OOD_PERCENTILE:
            named = "; ".join(f"{name} {z:+.1f} robust SDs" for name, z in self.reference.outstanding(descriptors))
            return Assessment(case_id, values, percentile, score, "out_of_distribution",
                              f"the image is further from the training images than {percentile:.0f} % of them are "
                              f"from one another (most unlike them: {named})")
        if calibration and math.isfinite(score) and score >= calibration.threshold:
            notable = [(p, name) for name, p in calibration.percentiles(values).items() if p >= NOTABLE_PERCENTILE]
            said = "; ".join(f"{_SAYS[name]} than on {p:.0f} % of the validation cases" for p, name in
                             sorted(notable, reverse=True)) or "several signs together"
            return Assessment(case_id, values, percentile, score, "review",
                              f"quality score {score:.0f} >= {calibration.threshold:.0f}: {said}")
        return Assessment(case_id, values, percentile, score, "ok", "")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "reference": self.reference.to_dict(),
                "rungs": {name: c.to_dict() for name, c in self.rungs.items()}, "label_shapes": self.label_shapes,
                "seconds": self.seconds, "notes": list(self.notes), "component_notes": COMPONENT_NOTES,
                "ood_percentile": OOD_PERCENTILE}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> QualityRecord:
        return cls(record["task"], ImageReference.from_dict(record["reference"]),
                   {name: Calibration.from_dict(c) for name, c in record["rungs"].items()},
                   record.get("label_shapes", {}), record.get("seconds", 0.0), tuple(record.get("notes", ())))

    def write(self, folder: Path) -> None:
        write_json(folder / QUALITY_JSON, self.to_dict())


@dataclass(frozen=True)
class Assessment:
    """One predicted case's quality: its component values, how far its image is (a percentile of the training
    images' distances), its score (NaN where the rung has no calibration), the flag and the reason in words."""

    case_id: str
    values: dict[str, float]
    distance_percentile: float
    score: float
    flag: str
    reason: str



def quality_columns(assessed: list[Assessment]) -> tuple[list[str], list[list[str]]]:
    """The header and one row per case (in order) of the quality columns: ``flag``, ``quality_score``,
    ``distance_percentile``, each component (:data:`COMPONENT_NOTES`' order, then the rest) and ``reason``."""
    names = {name for a in assessed for name in a.values}
    ordered = [n for n in COMPONENT_NOTES if n in names] + sorted(names - set(COMPONENT_NOTES))

    def number(x: float | None) -> str:
        return "" if x is None or not math.isfinite(x) else f"{x:.4g}"

    header = ["flag", "quality_score", "distance_percentile", *ordered, "reason"]
    rows = [[a.flag, number(a.score), number(a.distance_percentile),
             *(number(a.values.get(n)) for n in ordered), a.reason] for a in assessed]
    return header, rows


def write_quality_table(path: Path, assessed: list[Assessment]) -> list[int]:
    """Write ``quality.csv``: a row per case, the most suspect first (out of distribution, then review, then by
    score; ``quality.json``'s ``component_notes`` describe the columns); return that order (indices into
    ``assessed``)."""
    import csv
    import io

    from automed.data.atomic import write_text

    order = sorted(range(len(assessed)), key=lambda i: (-FLAGS.index(assessed[i].flag),
                                                        -np.nan_to_num(assessed[i].score, nan=-1.0)))
    header, rows = quality_columns(assessed)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["case", *header])
    for i in order:
        writer.writerow([assessed[i].case_id, *rows[i]])
    write_text(path, table.getvalue())
    return order


def flag_counts(assessed: list[Assessment]) -> str:
    """``"3 ok, 1 review, 0 out_of_distribution"``."""
    return ", ".join(f"{sum(a.flag == flag for a in assessed)} {flag}" for flag in FLAGS)


def read_quality(run_folder: Path) -> tuple[QualityRecord | None, str]:
    """The run's quality record, or None and why there is none."""
    path = Path(run_folder) / QUALITY_JSON
    if not path.is_file():
        return None, (f"{run_folder}: no {QUALITY_JSON} (the run was fitted before automed kept the training images' "
                      "statistics, or its task keeps none): predictions carry no quality record; fit again for one.")
    try:
        return QualityRecord.from_dict(json.loads(path.read_text())), ""
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"{path}: damaged ({type(exc).__name__}: {exc}); predictions carry no quality record."
