"""The registration task's parts of the report: per structure the warped labels' Dice before and after, the
field's folding and smoothness, the similarity, seconds per pair, and the learned rung's speed against the
classical one beside the published "1,000 times"."""

from __future__ import annotations

from typing import Any

from automed.report.sections import Table
from automed.report.tables import format_ci, format_number
from automed.report.task_report import Section, TaskReport

__all__ = ["RegistrationReport"]

PUBLISHED_SPEED_UP = ("the VoxelMorph paper reports about 1,000 times (a GPU network against ANTs SyN on a CPU, "
                      "minutes per pair)")


class RegistrationReport(TaskReport):
    """Pairs registered; rungs judged on the evaluation pairs."""

    def describe_dataset(self, report: dict[str, Any]) -> str:
        ds = report["dataset"]
        labels = f"labels {ds['labels']}" if ds.get("labelled") else "no labels on every pair: judged by NCC"
        atlas = f", atlas-to-subject ({ds['atlas']} moving)" if ds.get("atlas") else ""
        notes = "".join(f" Note: {note}." for note in ds.get("notes") or [])
        return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_volumes']} volumes, {ds['dims']}D on a "
                f"{'x'.join(map(str, ds['grid']))} grid of {ds['spacing']} mm; {ds['n_training']} training volumes, "
                f"{ds['n_evaluation_pairs']} evaluation pairs{atlas}, {labels}.{notes}")

    def rung_title(self, rung: dict[str, Any]) -> str:
        return f"{rung['name']}: per structure, on {rung['metric']['n']} evaluation pairs"

    def rung_table(self, report: dict[str, Any], rung: dict[str, Any]) -> Table | None:
        rows = [[name, format_number(v.get("dice_before_mean")),
                 format_ci(v["dice_mean"], v["dice_ci_low"], v["dice_ci_high"]),
                 format_ci(v["hd95_mean"], v["hd95_ci_low"], v["hd95_ci_high"], 2)]
                for name, v in (rung.get("per_class") or {}).items()]
        return (["structure", "Dice before", "Dice after [95% CI]", "HD95 mm [95% CI]"], rows) if rows else None

    def rung_sections(self, report: dict[str, Any], rung: dict[str, Any]) -> list[Section]:
        pairs = rung.get("pairs")
        if not pairs:
            return []

        def ci(name: str, digits: int = 3, scale: float = 1.0) -> str:
            v = pairs[name]
            return format_ci(*(None if x is None else x * scale for x in (v["mean"], v["ci_low"], v["ci_high"])),
                             digits)

        table = (["measure", "mean [95% CI] over pairs"], [
            ["folding voxels (det J <= 0), %", ci("folding", 3, 100.0)],
            ["SD of log det J", ci("sd_log_jacobian")],
            ["NCC before -> after", f"{format_number(pairs['ncc_before']['mean'])} -> {ci('ncc')}"],
            ["seconds per pair", ci("seconds", 3)]])
        sections = [Section("The field and its cost", f"Judged by {rung.get('judged_by', 'warped-label Dice')}.",
                            table)]
        speed = self._speed(report, rung)
        if speed:
            sections.append(Section(text=speed))
        return sections

    @staticmethod
    def _speed(report: dict[str, Any], rung: dict[str, Any]) -> str | None:
        """How many times faster per pair ``rung`` (a learned one: it has parameters) registers than the classical
        rung."""
        done = {r["name"]: r for r in report["rungs"] if r.get("status") == "done" and r.get("pairs")}
        if not rung.get("cost", {}).get("n_params") or rung["name"] == "classical" or "classical" not in done \
                or rung["name"] not in done:
            return None
        mine, theirs = rung["pairs"]["seconds"]["mean"], done["classical"]["pairs"]["seconds"]["mean"]
        if not mine:
            return None
        return (f"Per pair on this machine ({rung['cost']['device']}), {rung['name']} takes {mine:.3f} s against "
                f"classical's {theirs:.3f} s: {theirs / mine:.0f} times faster; {PUBLISHED_SPEED_UP}.")
