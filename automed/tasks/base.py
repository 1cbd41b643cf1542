"""The Task protocol: everything that differs between segmentation, classification and any later task.

The runner, the judge, predict, the recipe's validation and the CLI ask the task of a run
(:func:`automed.tasks.get_task`) instead of comparing task names. A task module imports only
light packages at module level, so reading a recipe never imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from automed.errors import DataError

if TYPE_CHECKING:
    from automed.recipe import Recipe
    from automed.results import RungResult
    from automed.rungs.base import FitContext, RungOutcome

__all__ = ["Inspection", "Opened", "Prepared", "Task", "about"]

GainOver = Callable[["RungResult"], "dict[str, Any] | None"]
"""The paired gain of the rung being judged over a finished rung's result (None: no shared case)."""


@dataclass(frozen=True)
class Opened:
    """A run's dataset as its rungs see it: the dataset, its fingerprint and the splits record."""

    dataset: Any
    fingerprint: Any
    splits: dict[str, Any]


@dataclass(frozen=True)
class Prepared(Opened):
    """What a new fit opens: :class:`Opened` plus the fingerprint as ``fingerprint.json`` holds it."""

    fingerprint_record: dict[str, Any]

    @property
    def opened(self) -> Opened:
        return Opened(self.dataset, self.fingerprint, self.splits)


@dataclass(frozen=True)
class Inspection:
    """What ``automed inspect`` found in a dataset: lines describing it, its fingerprint as JSON, and the problems
    (each would stop a fit) and warnings, one sentence each."""

    lines: list[str]
    record: dict[str, Any] | None
    problems: list[str]
    warnings: list[str]


class Task(ABC):
    """One kind of problem automed fits a ladder for.

    Subclasses declare their facts as class attributes and implement how their data is opened,
    judged and predicted; :func:`automed.tasks.register_task` makes one known by its ``name``.

    Attributes
    ----------
    name : str
        The recipe's ``task``.
    data_formats : tuple of str
        Dataset layouts the task reads, ``"auto"`` (detect) first.
    data_suffixes : tuple of str
        Suffixes of a dataset path (a single file) that name this task when a command is given none.
    metrics : tuple of str
        Metrics a recipe may judge and tune by, the default first.
    default_rungs : tuple of str
        The ladder when a recipe names none, lowest rung first.
    rungs : mapping
        Rung name -> ``"module:Class"``, or ``("module:Class", settings)`` for a rung that is a
        configuration of a shared implementation (see :mod:`automed.rungs`).
    recipe_options : frozenset of str
        The task-specific recipe fields this task reads; another task's are refused.
    predictor : str
        ``"module:function"`` writing predictions for new inputs, called as
        ``function(run_folder, inputs, out, rung=..., split=..., overwrite=..., progress=..., tta=...)``, and
        with ``uncertainty_maps=True`` only when the user asks for them (a predictor without them refuses it).
    fitted_model : type
        The :class:`typing.Protocol` (runtime-checkable) every fitted rung of the task satisfies: what its
        predictor calls. :func:`automed.rungs.fitted.load_fitted` refuses a rung that does not.
    auditor : str or None
        ``"module:function"`` ranking a finished run's cases by how suspect their labels look
        (``function(inputs: AuditInputs) -> Audit``, see :mod:`automed.audit`); None: ``automed audit``
        refuses the task's runs.
    report_sections : str
        ``"module:Class"`` of the :class:`automed.report.task_report.TaskReport` that writes the task's parts
        of the report (its dataset sentence, a rung's tables and pictures, paired gains); the default's
        suit a task whose rungs report one score with a CI.
    """

    name: ClassVar[str]
    data_formats: ClassVar[tuple[str, ...]]
    metrics: ClassVar[tuple[str, ...]]
    default_rungs: ClassVar[tuple[str, ...]]
    rungs: ClassVar[Mapping[str, str | tuple[str, dict[str, Any]]]]
    data_suffixes: ClassVar[tuple[str, ...]] = ()
    recipe_options: ClassVar[frozenset[str]] = frozenset()
    predictor: ClassVar[str]
    fitted_model: ClassVar[type]
    auditor: ClassVar[str | None] = None
    report_sections: ClassVar[str] = "automed.report.task_report:TaskReport"

    @abstractmethod
    def prepare(self, recipe: Recipe, data: Path, progress: bool) -> Prepared:
        """Open ``data`` for a new fit: the dataset, its fingerprint and the splits (folds and any test cases)."""

    @abstractmethod
    def reopen(self, recipe: Recipe, data: Path, fingerprint_record: dict[str, Any],
               splits: dict[str, Any]) -> Opened:
        """Open ``data`` again for a resumed fit, with the fingerprint and splits recorded at set-up."""

    def inspect(self, data: Path, data_format: str) -> Inspection:
        """Open ``data`` as a fit would and describe it, listing its problems; fits nothing.

        The default opens it as :meth:`prepare` does: a problem is the error that would stop the fit.
        """
        from automed.errors import AutomedError
        from automed.recipe import Recipe

        try:
            prepared = self.prepare(Recipe(task=self.name, data_format=data_format), data, progress=False)
        except AutomedError as exc:
            return Inspection([], None, [str(exc)], [])
        record = prepared.fingerprint_record
        return Inspection([f"{data}: {len(prepared.dataset.cases)} cases, {prepared.dataset.format} layout"],
                          record, [], [])

    @abstractmethod
    def comparison_cases(self, recipe: Recipe, opened: Opened) -> list[str]:
        """The cases every rung is judged on; never a case any rung tuned on."""

    @abstractmethod
    def summarize(self, outcome: RungOutcome, context: FitContext, recipe: Recipe) -> dict[str, Any]:
        """The rung's headline ``metric`` (with its CI), ``per_class`` and any other summary fields."""

    @abstractmethod
    def comparison(self, result: RungResult, comparison_cases: list[str], recipe: Recipe,
                   fingerprint: Any) -> tuple[dict[str, Any], GainOver]:
        """The metric of ``result`` on ``comparison_cases`` as the judge records it
        (``{"metric", "cases", "n", "case_ids"}``), and the paired gain of ``result`` over another rung's."""

    def label_subset(self, opened: Opened, fraction: float, recipe: Recipe) -> dict[str, Any]:
        """The splits of a learning-curve refit on ``fraction`` of the labelled training cases (``"dev"``: those
        cases), judged on the same cases as the full fit. A task whose ``recipe_options`` lack ``label_fractions``
        draws no learning curve, and the recipe refuses the option before this is asked."""
        from automed.errors import RecipeError

        raise RecipeError(f"The {self.name} task draws no learning curve (label_fractions).")

    def site_splits(self, opened: Opened, recipe: Recipe) -> dict[str, dict[str, Any]]:
        """One split per site (site -> splits) for leave-one-site-out refits (``cv: by-site``): trained on the
        other sites' cases, judged on the site's (``site_cases``; ``site_cases_are`` says which). A task whose
        ``recipe_options`` lack ``site_shift`` refits none, and the recipe refuses the option before this is
        asked."""
        from automed.errors import RecipeError

        raise RecipeError(f"The {self.name} task does not refit by site (cv: by-site).")

    def finish(self, folder: Path, recipe: Recipe, opened: Opened, done: tuple[RungResult, ...]) -> None:
        """Write the task's run-level records into the staging ``folder`` once every rung in ``done`` has finished
        (the quality record predictions are judged against; segmentation: the raters' agreement, where cases have
        several). The default writes none."""


@contextmanager
def about(data: Path) -> Iterator[None]:
    """Errors about the dataset as a whole (too few cases for the splits) start with its path."""
    try:
        yield
    except DataError as exc:
        raise DataError(f"{data}: {exc}") from exc
