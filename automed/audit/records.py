"""The audit's records: one :class:`SuspectCase` per audited case and the :class:`Audit` that ranks them,
written (``audit.json``, ``audit.csv``) and read only here."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from automed._jsonio import write_json
from automed.data.atomic import write_text
from automed.environment import automed_version
from automed.errors import RunFolderError

__all__ = ["AUDIT_CSV", "AUDIT_PNG", "AUDIT_FOLDER", "AUDIT_JSON", "Audit", "SuspectCase", "read_audit", "write_audit"]

AUDIT_FOLDER = "audit"
"""Where ``automed audit RUN`` writes in the run folder (the report shows that audit)."""
AUDIT_JSON = "audit.json"
AUDIT_CSV = "audit.csv"
AUDIT_PNG = "audit.png"
"""The picture of the most suspect cases."""
SUSPECT_Z = 3.5
"""A case is suspect when one of its evidence figures is a robust outlier: a modified z-score (median and MAD,
Iglewicz and Hoaglin's rule) above this, or a label issue cleanlab finds. On clean data few cases pass it."""


@dataclass(frozen=True)
class SuspectCase:
    """One audited case: how suspect its label (or image) looks, why, and what it weighs in the reported metric.

    Attributes
    ----------
    case_id, split : str
        The case and the split it belongs to (``train``/``val``/``test`` or ``dev``).
    score : float
        How suspect, higher first: the largest of its evidence figures as a robust z-score (a label issue from
        cleanlab counts as its label-quality shortfall on the same scale).
    suspect : bool
        Whether any evidence passes its threshold (:data:`SUSPECT_Z`, or cleanlab's own).
    reasons : tuple of str
        One sentence per evidence that passes its threshold.
    evidence : dict
        The figures behind the score (names depend on the task; see the audit's ``evidence_notes``).
    metric_without : float or None
        The metric the run reports (``metric_scope`` says which) re-scored without this case; None where the
        case does not count in it.
    metric_scope : str or None
        What ``metric_without`` re-scores, e.g. ``"classical test auc"`` or ``"unet2d validation dice"``.
    """

    case_id: str
    split: str
    score: float
    suspect: bool
    reasons: tuple[str, ...] = ()
    evidence: dict[str, float | None] = field(default_factory=dict)
    metric_without: float | None = None
    metric_scope: str | None = None


@dataclass(frozen=True)
class Audit:
    """A run's audit: every audited case ranked most suspect first, and what excluding the top ones changes.

    Attributes
    ----------
    task : str
    source : str
        Which predictions the audit used and why (one or two sentences).
    cases : tuple of SuspectCase
        Most suspect first.
    evidence_notes : dict
        Evidence name -> what it measures.
    metric : dict or None
        The reported metric the re-scoring starts from: ``{"scope", "mean", "n"}``.
    excluding_top : list of dict
        ``{"k", "mean", "n"}``: the reported metric without the ``k`` most suspect cases that count in it.
    left_out : list of str
        Checks the audit could not make on this run, with the reason.
    """

    task: str
    source: str
    cases: tuple[SuspectCase, ...]
    evidence_notes: dict[str, str]
    metric: dict[str, Any] | None = None
    excluding_top: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    @property
    def suspects(self) -> tuple[SuspectCase, ...]:
        """The cases flagged as suspect, most suspect first."""
        return tuple(c for c in self.cases if c.suspect)

    def summary(self) -> str:
        """One sentence: how many cases were audited and how many look suspect."""
        n = len(self.suspects)
        return (f"{n} of {len(self.cases)} cases look suspect" if n else
                f"none of {len(self.cases)} cases looks suspect") + f" ({self.source.split('.')[0].lower()})."


def write_audit(folder: Path, audit: Audit) -> tuple[Path, Path]:
    """Write ``audit.json`` and ``audit.csv`` into ``folder`` (atomically each); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / AUDIT_JSON, {"automed": automed_version(), **asdict(audit)})
    evidence = sorted({k for c in audit.cases for k in c.evidence})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["rank", "case", "split", "score", "suspect", "reasons", "metric_without", "metric_scope",
                     *evidence])
    for rank, case in enumerate(audit.cases, 1):
        writer.writerow([rank, case.case_id, case.split, f"{case.score:.3f}", int(case.suspect),
                         "; ".join(case.reasons), _cell(case.metric_without), case.metric_scope or "",
                         *(_cell(case.evidence.get(k)) for k in evidence)])
    write_text(folder / AUDIT_CSV, text.getvalue())
    return folder / AUDIT_JSON, folder / AUDIT_CSV


def read_audit(folder: Path) -> Audit | None:
    """The audit in ``folder/audit.json``; None when there is none.

    Raises
    ------
    RunFolderError
        If the file is not an audit this automed reads.
    """
    path = folder / AUDIT_JSON
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        values.pop("automed", None)
        cases = tuple(SuspectCase(**{**c, "reasons": tuple(c["reasons"])}) for c in values.pop("cases"))
        return Audit(**values, cases=cases)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RunFolderError(f"{path}: not an audit this automed ({automed_version()}) reads ({exc}); run "
                             f"`automed audit` again.") from exc


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
