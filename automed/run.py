"""The public API: fit a recipe, load a run, inspect and use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automed.errors import RunFolderError
from automed.recipe import Recipe, parse_duration

__all__ = ["Run", "fit", "load"]


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

    def leaderboard(self) -> list[dict[str, Any]]:
        """One row per rung: metric mean and 95% CI, fit seconds, peak RSS/VRAM, params, predict seconds."""
        from automed.report.tables import leaderboard_rows

        return leaderboard_rows(self.report_)

    def best(self, max_vram_gb: float | None = None, max_fit_seconds: float | None = None) -> str | None:
        """Name of the best finished rung within the given constraints."""
        from automed.report.tables import best_rung

        vram = None if max_vram_gb is None else int(max_vram_gb * 2**30)
        return best_rung(self.report_["rungs"], vram, max_fit_seconds)

    def predict(self, inputs: str | Path, out: str | Path, rung: str | None = None, split: str | None = None,
                overwrite: bool = False, tta: bool = True) -> list[Path]:
        """Predict new images: masks in ``out`` (segmentation) or a CSV file ``out`` (classification;
        ``split`` picks one split of a MedMNIST ``.npz``). ``tta=False`` skips mirrored test-time
        augmentation (2^d times faster for a d-dimensional deep rung).

        See :func:`automed.ladder.predict.predict_run`.
        """
        from automed.ladder.predict import predict_run

        return predict_run(self.folder, inputs, out, rung=rung, split=split, overwrite=overwrite, tta=tta)

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, best_rung={self.report_.get('best_rung')!r})"


def fit(recipe: Recipe, data: str | Path, out: str | Path, budget: str | float | None = None,
        overwrite: bool = False, progress: bool = True) -> Run:
    """Fit ``recipe`` on the dataset folder ``data`` and write the run folder ``out``.

    Parameters
    ----------
    recipe : Recipe
    data : path
        Dataset root (MSD, nnU-Net or images/ + labels/ folders).
    out : path
        Run folder to create; an existing one is replaced only with ``overwrite=True``.
    budget : str or float, optional
        Overrides the recipe's budget (``"30min"``, seconds).

    Examples
    --------
    >>> run = automed.fit(automed.Recipe(task="segmentation"), "data/", out="runs/x")  # doctest: +SKIP
    >>> run.leaderboard()  # doctest: +SKIP
    """
    from automed.ladder.runner import fit_run

    if budget is not None:
        recipe = recipe.replace(budget_s=parse_duration(budget))
    return Run.load(fit_run(recipe, data, out, overwrite=overwrite, progress=progress))


def load(folder: str | Path) -> Run:
    """Open a finished run folder (same as :meth:`Run.load`)."""
    return Run.load(folder)
