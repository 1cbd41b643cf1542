"""Report sections beyond the leaderboard: per-case scores, chosen configuration, realised plan,
the small-sample warning and the reproducibility record, each as plain tables or sentences."""

from __future__ import annotations

from typing import Any

from automed.report.tables import comparison_metric, training_label

__all__ = ["SMALL_SAMPLE", "Table", "chosen_configuration", "comparison_ids", "evaluated_cases", "realised_plan",
           "reproducibility_lines", "small_sample_warning"]

SMALL_SAMPLE = 20
"""Below this many comparison cases the report warns that its recommendation is fragile: a 95% CI
on a mean over n cases shrinks as 1/sqrt(n), and a paired gain of 0.01 Dice is rarely resolved below it."""

Table = tuple[list[str], list[list[str]]]


def comparison_ids(rung: dict[str, Any]) -> list[str]:
    """The ids of the cases the rung is ranked on (its own evaluated cases for runs that did not record them)."""
    recorded = (rung.get("comparison") or {}).get("case_ids")
    return list(recorded) if recorded else [case["case_id"] for case in rung.get("per_case") or []]


def evaluated_cases(rung: dict[str, Any]) -> str:
    """``"on its 30 evaluated cases"``: which cases a rung's own metric and tables are computed on."""
    n = (rung.get("metric") or {}).get("n")
    return f"on its {n} evaluated cases" if n is not None else "on its evaluated cases"


def small_sample_warning(report: dict[str, Any]) -> str | None:
    """A warning when the rungs are compared on fewer than :data:`SMALL_SAMPLE` cases; else None."""
    ns = [(rung.get("comparison") or {}).get("n", (comparison_metric(rung) or {}).get("n"))
          for rung in report["rungs"] if rung["status"] == "done"]
    ns = [n for n in ns if n]
    if not ns or min(ns) >= SMALL_SAMPLE:
        return None
    return (f"Small sample: the rungs are compared on {min(ns)} case(s). The confidence intervals are wide and a "
            "recommendation made on so few cases can change with more data; treat small gains as unresolved.")


def chosen_configuration(rung: dict[str, Any]) -> Table | None:
    """The hyperparameters the rung was fitted with (its search's choice or its default), one per row."""
    details = rung.get("details") or {}
    config = details.get("config") or details.get("model")
    if not isinstance(config, dict):
        return None
    rows = [[key, _plain(value, shape=key.endswith("patch"))] for key, value in _flat(config)]
    search = details.get("search") or {}
    if search.get("n_trials") is not None:
        rows.append(["(search)", search.get("note") or f"{search['n_trials']} trial(s)"
                     + ("" if search.get("n_pruned") is None else f", {search['n_pruned']} pruned")])
    return ["parameter", "value"], rows


def realised_plan(rung: dict[str, Any]) -> Table | None:
    """What the rung's training actually did: per training, epochs, the kept epoch, why it stopped, batch, seconds."""
    details, estimate = rung.get("details") or {}, rung.get("estimate") or {}
    trainings = details.get("trainings") or details.get("training")
    if not trainings:
        return None
    head = ["training", "epochs", "kept epoch", "stopped because", "batch", "seconds"]
    rows = [[training_label(t, i), str(t.get("epochs", "—")),
             "—" if t.get("best_epoch") is None or t["best_epoch"] < 0 else str(t["best_epoch"] + 1),
             str(t.get("stop_reason", "—")), str(t.get("batch_size", "—")), _plain(t.get("seconds"))]
            for i, t in enumerate(trainings)]
    if estimate.get("allotted_seconds") is not None:
        rows.append(["(allotted)", "", "", "", "", _plain(estimate["allotted_seconds"])])
    return head, rows


def reproducibility_lines(report: dict[str, Any]) -> list[str]:
    """Seed, command, code, data checksum, hardware and versions, one readable line each."""
    hw, listing = report.get("hardware") or {}, report.get("dataset_listing") or {}
    commit = report.get("automed_commit") or {}
    gpu = hw.get("gpu")
    lines = [f"Seed {report.get('seed')}; created {report.get('created_at')}; fit {_plain(report.get('fit_seconds'))} s.",
             f"Command: {report['command_line']}" if report.get("command_line") else None,
             f"A replay of {report['replay_of']}: its rungs' configurations and schedules, without a search."
             if report.get("replay_of") else None,
             f"automed {(report.get('versions') or {}).get('automed')}" + (
                 f", commit {commit['sha'][:12]}{' with uncommitted changes' if commit.get('dirty') else ''}"
                 if commit.get("sha") else "") + ".",
             (f"Data: {report['dataset'].get('path')}, {listing['n_files']} files, {listing['bytes'] / 2**20:.1f} MiB, "
              f"listing SHA-256 {listing['sha256'][:16]}…") if listing else None,
             f"Hardware: {hw.get('cpu') or 'CPU not recorded'}"
             + (f" ({hw['architecture']})" if hw.get("architecture") else "") + f", {hw.get('n_cores')} cores"
             + (f", {report['n_jobs']} worker(s)" if report.get("n_jobs") else "")
             + ("" if hw.get("ram_bytes") is None else f", {hw['ram_bytes'] / 2**30:.1f} GiB RAM") + ", GPU "
             + (f"{gpu['name']} ({gpu['memory_bytes'] / 2**30:.1f} GiB)" if gpu else "none")
             + (f"; {hw['platform']}" if hw.get("platform") else "") + ".",
             "Versions: " + ", ".join(f"{name} {version}" for name, version in (report.get("versions") or {}).items()
                                      if version) + "."]
    return [line for line in lines if line]


def _flat(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"hp": {"depth": 4}}`` as ``[("hp.depth", 4)]``."""
    out = []
    for key, value in config.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _plain(value: Any, shape: bool = False) -> str:
    """A value as the report prints it (``shape``: a list of sizes, ``40 x 56 x 40``)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return (" x " if shape else ", ").join(map(str, value))
    return str(value)
