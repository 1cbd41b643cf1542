"""The public API: fit a recipe, load a run, inspect and use it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from automed.errors import RunFolderError
from automed.recipe import Recipe, parse_duration

__all__ = ["Run", "fit", "load", "replay"]


class Run:
    """A finished run folder.

    Parameters
    ----------
    folder : path
        Folder written by :func:`fit`; read by :meth:`load`.

    Attributes
    ----------
    report_ : dict
        The content of ``report.json``.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> Run:
        """Open a finished run folder."""
        run = cls(folder)
        path = run.folder / "report.json"
        if not path.is_file():
            raise RunFolderError(f"{run.folder}: no report.json; is this a finished automed run folder?")
        run.report_ = json.loads(path.read_text())
        return run

    @property
    def recipe(self) -> Recipe:
        """The fully resolved recipe the run was fitted with."""
        return Recipe.from_yaml(self.folder / "recipe.yaml")

    def leaderboard(self, as_frame: bool = False) -> Any:
        """One row per rung: its score on the comparison cases with 95% CI and n, gains, and the costs.

        Parameters
        ----------
        as_frame : bool
            Return a ``pandas.DataFrame`` (needs pandas) instead of a :class:`~automed.report.leaderboard.Leaderboard`,
            a list of dicts that prints as a table.
        """
        from automed.report.leaderboard import Leaderboard
        from automed.report.tables import leaderboard_rows

        board = Leaderboard(leaderboard_rows(self.report_))
        return board.to_frame() if as_frame else board

    def best(self, max_vram_gb: float | None = None, max_fit_seconds: float | None = None,
             max_predict_seconds: float | None = None, max_memory_gb: float | None = None) -> str | None:
        """The rung to use: the report's recommendation, under the given limits.

        The rule is the report's (:func:`automed.report.recommend.recommend`): among the finished rungs
        within the limits, the best by score on the comparison cases, or a clearly cheaper rung that
        the best does not beat by more than the run's minimum gain (95% CI lower bound of the paired
        gain). Without limits this is ``report_["best_rung"]``, the rung the report and ``predict`` use.
        A finished rung whose files are gone from the run folder is left out, with a warning naming it.

        Parameters
        ----------
        max_vram_gb : float, optional
            Peak training VRAM in GiB (the estimate where the run had no GPU); replaces the run's own limit.
        max_fit_seconds : float, optional
            Wall seconds the rung took to fit.
        max_predict_seconds : float, optional
            Seconds to predict one case, as measured on the comparison cases.
        max_memory_gb : float, optional
            Peak resident memory (RSS) in GiB while fitting.

        Returns
        -------
        str or None
            The rung's name; None when no finished rung (with its files) meets the limits.
        """
        gib = 2**30
        limits = {"max_vram_bytes": None if max_vram_gb is None else int(max_vram_gb * gib),
                  "max_fit_seconds": max_fit_seconds, "max_predict_seconds": max_predict_seconds,
                  "max_rss_bytes": None if max_memory_gb is None else int(max_memory_gb * gib)}
        limits = {key: value for key, value in limits.items() if value is not None}
        from automed.ladder.choice import usable_best

        return usable_best(self.folder, self.report_, limits)

    def predict(self, inputs: str | Path | Sequence[str | Path], out: str | Path, rung: str | None = None,
                split: str | None = None, overwrite: bool = False, tta: bool = True,
                uncertainty_maps: bool = False) -> list[Path]:
        """Predict new images: masks in ``out`` (segmentation) or a CSV file ``out`` (classification), with each
        case's quality record (``quality.csv`` and ``quality.html`` beside the masks, or columns of the CSV).

        Parameters
        ----------
        inputs : path or list of paths
            An image file, a folder of images, or a list of image files.
        out : path
            Masks folder (segmentation) or CSV file (classification), written atomically.
        rung : str, optional
            Rung to use; default :meth:`best`.
        split : str, optional
            Classification ``.npz`` input: predict only this split.
        overwrite : bool
            Replace an earlier prediction at ``out``.
        tta : bool
            ``False`` skips mirrored test-time augmentation (2^d times faster for a d-dimensional deep rung).
        uncertainty_maps : bool
            Segmentation: also write each case's per-voxel uncertainty image into ``out/uncertainty/``.

        See :func:`automed.ladder.predict.predict_run`.
        """
        from automed.ladder.predict import predict_run

        _check_paths("Run.predict", "inputs", inputs, "an image file, a folder of images or a list of image files",
                     listed=True)
        _check_paths("Run.predict", "out", out, "the masks folder (segmentation) or CSV file (classification) to write")
        return predict_run(self.folder, inputs, out, rung=rung, split=split, overwrite=overwrite, tta=tta,
                           uncertainty_maps=uncertainty_maps)

    def export(self, out: str | Path, rung: str | None = None, format: str = "onnx",
               overwrite: bool = False) -> dict[str, Any]:
        """Export a fitted rung (default :meth:`best`) with everything needed to use it outside automed.

        ``format`` is ``"onnx"`` (checked with onnxruntime on a real case), ``"torchscript"`` or, for the
        classical rung, ``"joblib"``. See :func:`automed.export.export_run`.
        """
        from automed.export import export_run

        return export_run(self.folder, out, rung=rung, format=format, overwrite=overwrite)

    def audit(self, out: str | Path | None = None, overwrite: bool = False) -> Any:
        """Rank the run's cases by how suspect their labels (or images) look; nothing is refitted.

        Writes ``audit.csv``, ``audit.json`` and ``audit.png`` to the run's ``audit/`` folder (and shows the audit
        in the report, rewritten), or to ``out``. See :func:`automed.audit.runner.audit_run`.

        Returns
        -------
        automed.audit.records.Audit
            Every audited case, most suspect first (``.suspects``: the flagged ones).
        """
        from automed.audit.runner import audit_run

        if out is not None:
            _check_paths("Run.audit", "out", out, "the folder to write the audit to")
        audit = audit_run(self.folder, out, overwrite=overwrite)
        if out is None:
            self.report_ = json.loads((self.folder / "report.json").read_text())
        return audit

    def study(self, rung: str, storage: str | None = None) -> Any:
        """The Optuna study of ``rung``'s search (e.g. for ``optuna.visualization``).

        ``storage`` is the database URL the fit was given with ``--storage`` (default ``$AUTOMED_STORAGE``);
        a run that kept its studies in its own ``optuna.db`` needs none. The classical classifier's study
        is ``"classical-classification"``.

        Raises
        ------
        KeyError
            If the run has no study of that name (the rung did not search).
        """
        import optuna

        from automed.cluster.storage import StudyStorage
        from automed.run_record import read_run

        studies = StudyStorage.for_run(storage, self.folder, read_run(self.folder))
        return optuna.load_study(study_name=studies.study_name(rung), storage=studies.open())

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, best_rung={self.report_.get('best_rung')!r})"


def fit(recipe: Recipe | dict[str, Any] | str | Path, data: str | Path, out: str | Path,
        budget: str | float | None = None, overwrite: bool = False, progress: bool = True,
        storage: str | None = None, dask: str | None = None) -> Run:
    """Fit ``recipe`` on the dataset folder ``data`` and write the run folder ``out``.

    Parameters
    ----------
    recipe : Recipe, dict or path
        The recipe, its mapping (:meth:`Recipe.from_dict`) or the path of its YAML file
        (:meth:`Recipe.from_yaml`).
    data : path
        Dataset root (MSD, nnU-Net or images/ + labels/ folders).
    out : path
        Run folder to create; an existing one is replaced only with ``overwrite=True``.
    budget : str or float, optional
        Overrides the recipe's budget (``"30min"``, seconds).
    storage : str, optional
        Database URL for the run's Optuna studies (e.g. ``postgresql://user@host/automed``), which
        ``automed worker`` processes on other machines join; default ``$AUTOMED_STORAGE``, else
        SQLite in the run folder.
    dask : str, optional
        ``"local"`` (a Dask ``LocalCluster``) or a Dask scheduler's address: the classical rungs'
        per-case feature extraction runs there.

    Examples
    --------
    >>> run = automed.fit(automed.Recipe(task="segmentation"), "data/", out="runs/x")  # doctest: +SKIP
    >>> run.leaderboard()  # doctest: +SKIP
    """
    from automed.ladder.contexts import Execution
    from automed.ladder.runner import fit_run

    if isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    elif isinstance(recipe, (str, os.PathLike)):
        recipe = Recipe.from_yaml(recipe)
    elif not isinstance(recipe, Recipe):
        raise TypeError(f"automed.fit: recipe must be an automed.Recipe, a dict of recipe keys or the path of a YAML "
                        f"recipe; got {_type_name(recipe)}.")
    _check_paths("automed.fit", "data", data, "the dataset folder (or a classification .npz or .csv file)")
    _check_paths("automed.fit", "out", out, "the run folder to create")
    if budget is not None:
        recipe = recipe.replace(budget_s=parse_duration(budget))
    return Run.load(fit_run(recipe, data, out, overwrite=overwrite, progress=progress,
                            execution=Execution(storage, dask)))


def _check_paths(owner: str, name: str, value: Any, expected: str, listed: bool = False) -> None:
    """Raise a one-sentence :class:`TypeError` unless ``value`` is a path (``listed``: or a list of paths)."""
    for item in value if listed and isinstance(value, (list, tuple)) else [value]:
        if not isinstance(item, (str, os.PathLike)):
            hint = " (decode it with os.fsdecode)" if isinstance(item, bytes) else \
                "; write an array in memory to an image file first" if hasattr(item, "__array__") else ""
            raise TypeError(f"{owner}: {name} must be {expected}, as a str or pathlib.Path; "
                            f"got {_type_name(item)}{hint}.")


def _type_name(value: Any) -> str:
    """``None`` or the qualified type name of ``value`` (``numpy.ndarray``), for an error message."""
    if value is None:
        return "None"
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__qualname__}"


def replay(run_folder: str | Path, out: str | Path, data: str | Path | None = None, overwrite: bool = False,
           progress: bool = True) -> Run:
    """Train the plan the run in ``run_folder`` realised again, without searching, into ``out``.

    Each finished rung is refitted with the configuration it chose and the epochs its trainings were
    scheduled for (``realised_plan.json``), with no time budget, on the run's data (or ``data``, the
    same cases elsewhere) with its seed and folds. Skipped rungs are left out.

    Examples
    --------
    >>> automed.replay("runs/x", "runs/x-again")  # doctest: +SKIP
    """
    from automed.ladder.replay import replay_inputs
    from automed.ladder.runner import fit_run

    recipe, recorded_data, pins = replay_inputs(run_folder)
    return Run.load(fit_run(recipe, data or recorded_data, out, overwrite=overwrite, progress=progress, replay=pins))


def load(folder: str | Path) -> Run:
    """Open a finished run folder (same as :meth:`Run.load`)."""
    return Run.load(folder)
