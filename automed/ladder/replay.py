"""The realised plan of a run, and replaying it: the same rungs trained again with the configuration
and schedule that were chosen, without searching and without a time budget.

Every fit ends by writing ``realised_plan.json``: per rung, the plan it followed (``plan.json``:
grid, patch, batch sizes, epochs) and what it chose, as the rung says (:meth:`automed.rungs.base.Rung.chosen`:
the configuration, the epochs each final training was scheduled for, the number of seed models). ``automed fit --replay RUN`` reads it,
keeps the rungs that finished, and pins each one's plan (:func:`pinned_plan`), so a busier or
faster machine trains the same model instead of a differently shrunk one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from automed.errors import RunFolderError
from automed.results import RESULT, read_result

__all__ = ["REALISED_PLAN", "REPLAY", "pinned_plan", "realised_plan", "replay_inputs"]

REALISED_PLAN = "realised_plan.json"
REPLAY = "replay.json"
"""In a replaying run folder: the run it replays and the plan pinned for each rung."""


def realised_plan(folder: Path) -> dict[str, Any]:
    """The plan each rung of the finished run in ``folder`` followed, and what it chose."""
    import yaml

    from automed.environment import automed_version
    from automed.rungs import rung_class
    from automed.rungs.records import saved_plan

    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    rungs = {}
    for spec in recipe["rungs"]:
        rung_folder = folder / "rungs" / spec["name"]
        if not (rung_folder / RESULT).is_file():
            rungs[spec["name"]] = {"status": "not run"}
            continue
        result = read_result(rung_folder)
        entry: dict[str, Any] = {"status": result.status}
        plan = saved_plan(rung_folder) if result.done else None
        if plan is not None:
            entry["plan"] = dataclasses.asdict(plan)
            entry["choice"] = rung_class(spec["name"], recipe["task"]).chosen(result.details)
        rungs[spec["name"]] = entry
    return {"automed": automed_version(), "run": str(folder.resolve()), "rungs": rungs}


def replay_inputs(run_folder: str | Path) -> tuple[Any, Path, dict[str, Any]]:
    """The recipe, data folder and pinned plans that replay the run in ``run_folder``.

    The recipe is the run's, with only the rungs that finished, no time budget (nothing is shrunk
    for time: the plans say how much to train) and the whole ladder climbed.

    Raises
    ------
    RunFolderError
        If the folder is not a finished run, is being fitted, was fitted before automed recorded
        realised plans, or its ``realised_plan.json`` is not the plan its rungs' own records describe
        (truncated, edited): the whole plan is checked before anything is trained.
    """
    from automed.recipe import Recipe, RungSpec
    from automed.run_record import read_run

    from automed.ladder.lock import refuse_if_locked

    folder = Path(run_folder)
    refuse_if_locked(folder)
    path = folder / REALISED_PLAN
    if not (folder / "report.json").is_file():
        raise RunFolderError(f"{folder}: not a finished automed run folder (no report.json); nothing to replay.")
    if not path.is_file():
        raise RunFolderError(f"{path}: missing; the run was fitted by an automed that did not record the plan it "
                             "realised, so it cannot be replayed. Refit it with this automed.")
    realised = _checked_realised_plan(folder, path)
    recipe = Recipe.from_yaml(folder / "recipe.yaml")
    kept, pins = [], {}
    for spec in recipe.rungs:
        entry = realised["rungs"].get(spec.name, {})
        if entry.get("status") != "done":
            continue
        params = spec.params
        if "plan" in entry:
            choice = dict(entry["choice"])
            if "n_models" in choice and hasattr(params, "n_models"):
                params = dataclasses.replace(params, n_models=choice.pop("n_models"))
            pins[spec.name] = {**entry["plan"], "settings": {**entry["plan"]["settings"], **choice}}
        kept.append(RungSpec(spec.name, params))
    if not kept:
        raise RunFolderError(f"{folder}: no rung finished in this run, so there is nothing to replay.")
    recipe = recipe.replace(rungs=tuple(kept), budget_s=None, full_ladder=True)
    return recipe, Path(read_run(folder).data), {"of": str(folder.resolve()), "plans": pins}


def _checked_realised_plan(folder: Path, path: Path) -> dict[str, Any]:
    """The realised plan in ``path``, checked against the one the run's own records (``recipe.yaml``, each
    rung's ``result.json`` and ``plan.json``) give: a replay trains only a plan its run realised."""
    from automed._jsonio import _finite, _jsonable  # the same conversion write_json applied to the file

    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: not readable JSON ({exc}); the run folder is damaged. Refit the run, or restore "
                             "the file.") from exc
    try:
        expected = json.loads(json.dumps(_finite(realised_plan(folder)), default=_jsonable))["rungs"]
    except (ValueError, KeyError, TypeError) as exc:  # a damaged recipe.yaml or plan.json; result.json says itself
        raise RunFolderError(f"{folder}: its recipe.yaml or a rung's plan.json cannot be read ({exc}); the run folder "
                             "is damaged, so it cannot be replayed. Refit the run.") from exc
    rungs = recorded.get("rungs") if isinstance(recorded, dict) else None
    if not isinstance(rungs, dict):
        raise RunFolderError(f"{path}: has no 'rungs' table; the file is damaged or was edited. Refit the run, or "
                             "restore the file.")
    for name in sorted(set(expected) | set(rungs)):
        if name not in expected:
            raise RunFolderError(f"{path}: rung {name!r} is not a rung of this run ({sorted(expected)}); the file was "
                                 "edited or is damaged. Refit the run, or restore the file.")
        if rungs.get(name) != expected[name]:
            where = name if not isinstance(rungs.get(name), dict) else next(
                (f"{name}.{key}" for key in sorted(set(expected[name]) | set(rungs[name]))
                 if rungs[name].get(key) != expected[name].get(key)), name)
            raise RunFolderError(f"{path}: the entry {where} differs from what the run's own records "
                                 f"(rungs/{name}/) say it realised; the file was edited or is damaged. Refit the run, "
                                 "or restore the file.")
    return {**recorded, "rungs": expected}


def check_replayed_data(replay: dict[str, Any], summary: dict[str, Any], data: Path) -> None:
    """Raise if the dataset summarised in ``summary`` (``fingerprint.json``'s content) is not shaped like the
    one the replayed run was fitted on: its dimensions, channels and classes.

    Raises
    ------
    DataError
        Naming ``data`` and what differs.
    """
    from automed.errors import DataError

    source = Path(replay["of"])
    fitted = json.loads((source / "fingerprint.json").read_text())
    for key, what in (("dims", "dimensions"), ("n_channels", "channels"), ("classes", "classes")):
        if key in fitted and key in summary and fitted[key] != summary[key]:
            raise DataError(f"{data}: has {what} {summary[key]}, but the run it replays ({source}) was fitted on "
                            f"{what} {fitted[key]}; replay it on the same kind of data.")


def pinned_plan(rung_folder: Path) -> Any:
    """The plan a replay pins for the rung whose folder is ``rung_folder`` (None outside a replay)."""
    from automed.rungs.base import RungPlan

    path = rung_folder.parent.parent / REPLAY
    if not path.is_file():
        return None
    plan = json.loads(path.read_text())["plans"].get(rung_folder.name)
    return None if plan is None else RungPlan(**plan)
