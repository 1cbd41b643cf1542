"""The report's section on several annotators: the raters' agreement with one another (the human ceiling) beside
each rung's agreement with each rater and with the consensus it trained on."""

from __future__ import annotations

from typing import Any

from automed.report.tables import format_ci, format_number
from automed.report.task_report import Section

__all__ = ["rater_sections"]


def _ci(metric: dict[str, Any] | None) -> str:
    return "—" if not metric else format_ci(metric["mean"], metric["ci_low"], metric["ci_high"])


def rater_sections(report: dict[str, Any]) -> list[Section]:
    """The sections on the raters (none when each case has one label)."""
    raters = report.get("raters")
    if not raters:
        return []
    inter = raters["inter_rater"]
    names, rungs = raters["raters"], raters["rungs"]
    text = (f"{len(names)} raters outlined each of {raters['n_cases']} cases; the rungs trained on their "
            f"{raters['consensus']} consensus. The raters agree with one another at Dice {_ci(inter['metric'])} (each "
            "case's mean over its pairs of raters, then over cases): the ceiling a model can be held to.")
    for name, row in rungs.items():
        mean = sum(m["mean"] for m in row["vs_rater"].values()) / len(row["vs_rater"])
        text += (f" {name} agrees with the raters at {mean:.3f} on average ({row['n_cases']} out-of-fold cases) and "
                 f"with the consensus at {_ci(row['vs_consensus'])}.")
    if raters["disagreeing_cases"]:
        listed = ", ".join(f"{d['case_id']} ({d['inter_rater_dice']:.3f})" for d in raters["disagreeing_cases"][:10])
        text += f" Cases whose raters disagree far more than elsewhere (their labels are the least sure): {listed}."
    per_class = [[cls, _ci({"mean": v["dice_mean"], "ci_low": v["dice_ci_low"], "ci_high": v["dice_ci_high"]}),
                  format_number(v["hd95_mean"], 2)] for cls, v in inter["per_class"].items()]
    sections = [Section("Several annotators", text, (["class", "inter-rater Dice [95% CI]", "inter-rater HD95"],
                                                      per_class))]
    head = ["rater", "the other raters"] + [f"{name}" for name in rungs]
    rows = [[name, _ci(raters["rater_vs_others"][name])] + [_ci(row["vs_rater"].get(name)) for row in rungs.values()]
            for name in names]
    rows.append(["consensus", "—"] + [_ci(row["vs_consensus"]) for row in rungs.values()])
    sections.append(Section("Each rater against the others and against each rung",
                            "Dice with this rater's masks: a rung as good as a rater agrees with each rater about as "
                            "well as the other raters do.", (head, rows)))
    return sections
