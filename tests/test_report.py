"""Report tables, recommendation, rendering and the Pareto plot, on hand-made run folders (no fitting)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from automed.cli import main
from automed.report import build_report, recommend, to_html, to_markdown, write_reports
from automed.report.plots import pareto_front
from automed.report.tables import best_rung, leaderboard_rows
from automed.statistics import case_scores, paired_gain, summarize_segmentation

CLASSES = {0: "background", 1: "left", 2: "right"}
GIB = 2**30
FOLD0 = [f"case_{i:03d}" for i in range(12)]  # the validation cases of fold 0, shared by every rung
FOLD1 = [f"case_{i:03d}" for i in range(12, 24)]
SKIP_REASON = "estimated 31 min > 12 min left."


def per_case(dice: np.ndarray, case_ids: list[str]) -> list[dict]:
    """Per-case scores as the runner writes them: the same Dice for both foreground classes."""
    return [{"case_id": c, "fold": 0 if c in FOLD0 else 1,
             "scores": {"0": {"dice": 1.0, "hd95": 0.0}, "1": {"dice": float(d), "hd95": 2.0},
                        "2": {"dice": float(d), "hd95": 3.0}}} for c, d in zip(case_ids, dice)]


def done(name: str, cases: list[dict], fit_seconds: float, peak_vram: int | None = None,
         est_vram: int | None = None, comparison: bool = True) -> dict:
    """A finished segmentation rung: metric over its own cases, comparison metric on fold 0's cases."""
    metric, per_class = summarize_segmentation(cases, CLASSES, include_background=False)
    shared = [c for c in cases if c["case_id"] in FOLD0]
    result = {"name": name, "status": "done", "reason": None, "metric": metric, "per_class": per_class,
              "cost": {"fit_seconds": fit_seconds, "search_seconds": 0.75 * fit_seconds,
                       "final_fit_seconds": 0.25 * fit_seconds, "device": "cpu" if peak_vram is None else "cuda",
                       "n_jobs": 2, "core_hours": 2 * fit_seconds / 3600, "gpu_hours": None, "n_trials": 8,
                       "n_trials_pruned": 3, "n_params": 1_234_567, "peak_rss_bytes": 3 * GIB,
                       "peak_vram_bytes": peak_vram, "est_train_vram_bytes": est_vram,
                       "predict_seconds_per_case": 0.5},
              "estimate": {"seconds": 0.9 * fit_seconds, "train_vram_bytes": est_vram, "note": "from a 2-batch probe"},
              "shrunk": [], "per_case": cases, "postprocessing": [], "details": {}}
    if comparison:
        result["comparison"] = {"metric": summarize_segmentation(shared, CLASSES, False)[0],
                                "cases": "validation cases of fold 0", "n": len(shared),
                                "case_ids": [c["case_id"] for c in shared]}
    return result


def with_gains(rungs: list[dict]) -> list[dict]:
    """Fill gain_vs_baseline (vs the first rung) and gain_vs_prev (vs the best earlier rung) like the runner."""
    scores = {r["name"]: case_scores(r["per_case"], [1, 2]) for r in rungs if r["status"] == "done"}
    best = rungs[0]
    for rung in rungs[1:]:
        if rung["status"] != "done":
            continue
        base = rungs[0]["name"]
        rung["gain_vs_baseline"] = {"vs": base, **paired_gain(scores[base], scores[rung["name"]])}
        rung["gain_vs_prev"] = {"vs": best["name"], **paired_gain(scores[best["name"]], scores[rung["name"]])}
        if rung["comparison"]["metric"]["mean"] > best["comparison"]["metric"]["mean"]:
            best = rung
    return rungs


def ladder(unet3d_gain: float, unet3d_vram: int | None = 6 * GIB, unet3d_est: int | None = None) -> list[dict]:
    """classical < unet2d (clearly better, 4x the time) < unet3d (``unet3d_gain`` over unet2d, 16x); unetpp skipped."""
    rng = np.random.default_rng(0)
    classical = np.clip(0.80 + rng.normal(0, 0.03, 24), 0, 1)
    unet2d = np.clip(classical[:12] + 0.05 + rng.normal(0, 0.01, 12), 0, 1)
    unet3d = np.clip(unet2d + unet3d_gain + rng.normal(0, 0.01, 12), 0, 1)
    return with_gains([
        done("classical", per_case(classical, FOLD0 + FOLD1), 100.0),
        done("unet2d", per_case(unet2d, FOLD0), 400.0, peak_vram=2 * GIB),
        {"name": "unetpp", "status": "skipped", "reason": SKIP_REASON, "metric": None, "comparison": None,
         "cost": None, "estimate": {"seconds": 1860, "train_vram_bytes": 9 * GIB, "note": None}, "shrunk": [],
         "per_case": [], "per_class": None, "postprocessing": None, "details": {}},
        done("unet3d", per_case(unet3d, FOLD0), 1600.0, peak_vram=unet3d_vram, est_vram=unet3d_est),
    ])


def report_of(rungs: list[dict], constraints: dict | None = None, task: str = "segmentation") -> dict:
    classes = {str(k): v for k, v in CLASSES.items()}
    return {"task": task, "dataset": {"classes": classes}, "seed": 0, "n_folds": 2,
            "constraints": constraints, "rungs": rungs}


def write_run(folder: Path, rungs: list[dict], constraints: dict | None = None, stopped_early: str | None = None,
              missing: tuple[str, ...] = ()) -> Path:
    """A run folder by hand: recipe, fingerprint, splits, run.json and one result.json per rung not ``missing``."""
    names = [r["name"] for r in rungs] + list(missing)
    (folder / "rungs").mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"task": "segmentation", "n_folds": 2, "random_state": 0,
                                                        "rungs": [{"name": n, "params": {}} for n in names]}))
    (folder / "fingerprint.json").write_text(json.dumps({
        "n_cases": 24, "dims": 3, "modality": "MRI", "classes": {str(k): v for k, v in CLASSES.items()},
        "median_shape": [12, 14, 12], "median_spacing": [1.5, 1.0, 1.0], "empty_label_cases": []}))
    (folder / "splits.json").write_text(json.dumps({"kind": "cv", "folds": [{"val": FOLD0}, {"val": FOLD1}]}))
    run = {"data": "/data/toy", "format": "msd", "seed": 0, "created_at": "2026-01-01T00:00:00+00:00",
           "hardware": {"n_cores": 2, "ram_bytes": 24 * GIB, "gpu": None}, "versions": {"automed": "0.1.0"},
           "fit_seconds": 2200.0}
    if constraints is not None:
        run.update(constraints=constraints, stopped_early=stopped_early)
    (folder / "run.json").write_text(json.dumps(run))
    for rung in rungs:
        (folder / "rungs" / rung["name"]).mkdir()
        (folder / "rungs" / rung["name"] / "result.json").write_text(json.dumps(rung))
    return folder


CONSTRAINTS = {"budget_s": 3600, "max_vram_bytes": None, "min_gain": 0.005, "full_ladder": False, "cv": "fold 0"}


def test_leaderboard_rows_carry_comparison_gains_and_costs():
    rows = {r["rung"]: r for r in leaderboard_rows(report_of(ladder(0.04)))}
    unet3d, classical = rows["unet3d"], rows["classical"]
    assert unet3d["gain_vs_baseline"] == "classical" and unet3d["gain_vs_prev"] == "unet2d"
    assert unet3d["gain_vs_baseline_ci_low"] > 0.05 and unet3d["gain_vs_prev_ci_low"] > 0.02
    assert unet3d["gain_vs_prev_ci_low"] <= unet3d["gain_vs_prev_mean"] <= unet3d["gain_vs_prev_ci_high"]
    assert unet3d["comparison_n"] == 12 and unet3d["comparison_cases"] == "validation cases of fold 0"
    assert unet3d["search_seconds"] == 1200 and unet3d["final_fit_seconds"] == 400 and unet3d["n_trials_pruned"] == 3
    assert classical["gain_vs_baseline_mean"] is None
    assert classical["comparison_n"] == 12  # fold 0 only, not all 24
    assert classical["mean"] != classical["comparison_mean"]  # own metric over 24 cases, comparison over 12
    skipped = rows["unetpp"]
    assert skipped["reason"] == SKIP_REASON and skipped["est_train_vram_bytes"] == 9 * GIB
    assert skipped["fit_seconds"] is None and skipped["comparison_mean"] is None


def test_leaderboard_falls_back_to_own_metric_without_comparison():
    rung = done("classical", per_case(np.full(24, 0.9), FOLD0 + FOLD1), 10.0, comparison=False)
    row = leaderboard_rows(report_of([rung]))[0]
    assert row["comparison_mean"] == row["mean"] == pytest.approx(0.9) and row["comparison_n"] == 24


@pytest.mark.parametrize("unet3d_gain, zero_in_ci", [(-0.004, True), (0.0, False)])
def test_recommends_the_cheaper_rung_when_the_costlier_gain_is_not_significant(unet3d_gain, zero_in_ci):
    report = report_of(ladder(unet3d_gain), CONSTRAINTS)
    gain = report["rungs"][3]["gain_vs_prev"]
    assert best_rung(report["rungs"]) == "unet3d" and gain["ci_low"] <= CONSTRAINTS["min_gain"]
    assert (gain["ci_low"] < 0 < gain["ci_high"]) == zero_in_ci
    chosen = recommend(report)
    assert chosen["rung"] == "unet2d"
    sentence = chosen["sentence"]
    assert sentence.startswith("Use unet2d: Dice ") and "on 12 validation cases of fold 0" in sentence
    assert "over classical at 4.0x its fit time" in sentence
    assert "unet3d's gain over it is " in sentence and "at 4.0x unet2d's fit time" in sentence
    assert "unetpp was skipped (estimated 31 min > 12 min left)" in sentence


def test_recommends_the_costlier_rung_when_its_gain_is_significant():
    report = report_of(ladder(0.04), CONSTRAINTS)
    chosen = recommend(report)
    assert chosen["rung"] == "unet3d" and best_rung(report["rungs"]) == "unet3d"
    gain = report["rungs"][3]["gain_vs_baseline"]
    assert f"+{gain['mean']:.3f} [{gain['ci_low']:.3f}, {gain['ci_high']:.3f}] over classical at 16.0x" in chosen["sentence"]


def test_min_gain_sets_what_is_worth_the_cost():
    assert recommend(report_of(ladder(0.04), {**CONSTRAINTS, "min_gain": 0.06}))["rung"] == "unet2d"
    assert recommend(report_of(ladder(0.04), {**CONSTRAINTS, "min_gain": 0.12}))["rung"] == "classical"
    assert recommend(report_of(ladder(0.04), {**CONSTRAINTS, "min_gain": None}))["rung"] == "unet3d"  # default 0.005


@pytest.mark.parametrize("peak, estimate, kind", [(6 * GIB, None, "peak"), (None, 6 * GIB, "estimated training")])
def test_max_vram_excludes_a_rung(peak, estimate, kind):
    rungs = ladder(0.04, unet3d_vram=peak, unet3d_est=estimate)
    report = report_of(rungs, {**CONSTRAINTS, "max_vram_bytes": 4 * GIB})
    chosen = recommend(report)
    assert chosen["rung"] == "unet2d" and best_rung(report["rungs"], {"max_vram_bytes": 4 * GIB}) == "unet2d"
    assert f"unet3d was excluded ({kind} VRAM 6.0 GiB > 4.0 GiB allowed)" in chosen["sentence"]


def test_unpaired_scores_fall_back_to_the_best_metric():
    rungs = [{"name": "classical", "status": "done", "metric": {"name": "auc", "mean": 0.80, "ci_low": 0.7,
                                                                  "ci_high": 0.9, "n": 30},
              "cost": {"fit_seconds": 5.0}, "per_case": [{"case_id": "a", "label": "0", "proba": [0.6, 0.4]}]},
             {"name": "cnn", "status": "done", "metric": {"name": "auc", "mean": 0.81, "ci_low": 0.7, "ci_high": 0.9,
                                                          "n": 30}, "cost": {"fit_seconds": 50.0}}]
    chosen = recommend(report_of(rungs, task="classification"))
    assert chosen["rung"] == "cnn" and chosen["sentence"].startswith("Use cnn: AUC 0.810 [0.700, 0.900] on 30 held-out")


def test_classification_recommends_the_cheaper_rung_by_the_stored_paired_gain():
    def rung(name, auc, seconds, gain=None):
        return {"name": name, "status": "done", "metric": {"name": "auc", "mean": auc, "ci_low": auc - 0.05,
                                                           "ci_high": auc + 0.05, "n": 156},
                "cost": {"fit_seconds": seconds}, "gain_vs_baseline": gain, "gain_vs_prev": gain}

    unclear = {"vs": "classical", "mean": 0.001, "ci_low": -0.029, "ci_high": 0.029, "n": 156}
    rungs = [rung("classical", 0.910, 80.0), rung("ssl", 0.911, 270.0, unclear)]
    chosen = recommend(report_of(rungs, task="classification"))
    assert chosen["rung"] == "classical"
    assert "ssl's gain over it is +0.001 [-0.029, 0.029] on the same 156 cases" in chosen["sentence"]
    clear = {**unclear, "mean": 0.05, "ci_low": 0.02, "ci_high": 0.08}
    assert recommend(report_of([rungs[0], rung("ssl", 0.96, 270.0, clear)], task="classification"))["rung"] == "ssl"


def test_no_finished_rung_says_why():
    rungs = ladder(0.0)[2:3]
    assert recommend(report_of(rungs)) == {"rung": None, "sentence": "No rung finished; unetpp was skipped "
                                                                      "(estimated 31 min > 12 min left)."}
    assert best_rung(rungs, {"max_vram_bytes": 4 * GIB, "max_fit_seconds": 10.0}) is None


def test_pareto_front_keeps_only_undominated_points():
    points = [{"rung": n, "fit_seconds": s, "comparison_mean": m}
              for n, s, m in [("a", 10, 0.7), ("b", 40, 0.8), ("c", 80, 0.75), ("d", 160, 0.85), ("e", 10, 0.6)]]
    assert [p["rung"] for p in pareto_front(points)] == ["a", "b", "d"]


def test_write_reports_renders_skips_gains_and_pareto(tmp_path):
    folder = write_run(tmp_path / "run", ladder(0.002), CONSTRAINTS, stopped_early="unet3d gained less than min_gain.",
                       missing=("swin",))
    report = write_reports(folder)
    assert report["best_rung"] == report["recommendation"]["rung"] == "unet2d"
    assert report["constraints"] == CONSTRAINTS and report["stopped_early"].startswith("unet3d gained")
    assert report["rungs"][-1] == {"name": "swin", "status": "not run", "reason": None, "metric": None,
                                   "per_class": None, "cost": None, "postprocessing": None}
    assert json.loads((folder / "report.json").read_text(encoding="utf-8"))["recommendation"] == report["recommendation"]
    assert (folder / "pareto.png").read_bytes().startswith(b"\x89PNG")
    md, html = (folder / "report.md").read_text(encoding="utf-8"), (folder / "report.html").read_text(encoding="utf-8")
    assert md.split("\n\n")[1].startswith("Use **unet2d**: Dice")
    assert "](pareto.png)" in md and 'alt="metric vs compute' in html
    assert html.count("data:image/png;base64,") == 2  # Pareto plot and per-case Dice
    assert "skipped: estimated 31 min > 12 min left" in md and "skipped: estimated 31 min &gt; 12 min left" in html
    for text in (md, html):
        assert "gain vs classical [95% CI]" in text and "gain vs previous best [95% CI]" in text
        assert "The ladder stopped early: unet3d gained less than min_gain." in text
        assert "Constraints: budget 60 min, min gain 0.005, full ladder off, cv fold 0." in text
        assert "1,234,567" in text and "1600 (1200 + 400)" in text and "8 (3)" in text
    unet3d_row = next(line for line in md.splitlines() if line.startswith("| unet3d |"))
    gain = report["rungs"][3]["gain_vs_prev"]
    assert f"{gain['mean']:+.3f} [" in unet3d_row and "vs unet2d" in unet3d_row
    assert "6.00 GiB / —" in unet3d_row  # peak VRAM / no estimate
    assert next(line for line in md.splitlines() if line.startswith("| swin |")).endswith("| not run |")


def test_old_style_run_without_constraints_still_renders(tmp_path):
    rung = done("classical", per_case(np.full(24, 0.9), FOLD0 + FOLD1), 4.0, comparison=False)
    for key in ("estimate", "shrunk", "reason"):
        del rung[key]
    rung["cost"] = {k: rung["cost"][k] for k in ("fit_seconds", "peak_rss_bytes", "peak_vram_bytes", "n_params",
                                                 "predict_seconds_per_case", "device", "n_jobs")}
    rung["cost"]["n_params"] = None
    report = write_reports(write_run(tmp_path / "old", [rung]))
    assert report["constraints"] is None and report["stopped_early"] is None
    assert report["best_rung"] == "classical"
    assert report["recommendation"]["sentence"] == ("Use classical: Dice 0.900 [0.900, 0.900] on 24 cases "
                                                    "(2-fold cross-validation), fitted in 4 s.")
    md = (tmp_path / "old" / "report.md").read_text(encoding="utf-8")
    assert "Constraints" not in md and "gain vs" not in md and "core-h" not in md  # empty columns left out
    old_report = {k: v for k, v in report.items() if k != "recommendation"}  # a report.json from before
    assert "Use **classical**" in to_markdown(old_report) and "Use classical" in to_html(old_report)


def test_build_report_and_cli_do_not_import_torch(tmp_path):
    folder = write_run(tmp_path / "run", ladder(0.04), CONSTRAINTS)
    assert build_report(folder)["best_rung"] == "unet3d"
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 0 and "Best rung: unet3d" in result.output
    code = (f"import sys; from automed.cli import main; main(['report', {str(folder)!r}], standalone_mode=False); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_rung_barely_cheaper_than_the_best_is_not_recommended_over_it():
    report = report_of(ladder(-0.004), CONSTRAINTS)
    assert recommend(report)["rung"] == "unet2d"
    rungs = {r["name"]: r for r in report["rungs"]}
    rungs["unet2d"]["cost"]["fit_seconds"] = 0.9 * rungs["unet3d"]["cost"]["fit_seconds"]
    rungs["classical"]["cost"]["fit_seconds"] = 0.95 * rungs["unet3d"]["cost"]["fit_seconds"]
    assert recommend(report)["rung"] == "unet3d"


def test_best_follows_the_recommendation_not_the_top_score(tmp_path):
    """The trap: the top of the leaderboard (unet3d, +0.0 over unet2d at 4x its time) is not the rung to use."""
    import automed

    folder = write_run(tmp_path / "run", ladder(0.0), CONSTRAINTS)
    report = write_reports(folder)
    run = automed.load(folder)
    assert best_rung(report["rungs"]) == "unet3d"
    assert run.best() == report["best_rung"] == report["recommendation"]["rung"] == "unet2d"
    assert "best_rung='unet2d'" in repr(run)
    assert run.best(max_fit_seconds=200) == "classical"  # unet2d took 400 s
    assert run.best(max_predict_seconds=0.1) is None  # every rung predicts in 0.5 s per case
    assert run.best(max_memory_gb=2) is None and run.best(max_memory_gb=4) == "unet2d"
    assert run.best(max_vram_gb=1) == "classical"  # unet2d peaked at 2 GiB, classical needs none
    sentence = recommend(report, {"max_predict_seconds": 0.1})["sentence"]
    assert "unet2d was excluded (predict 0.50 s per case > 0.10 s allowed)" in sentence


def test_leaderboard_prints_as_a_table_and_converts_to_a_frame(tmp_path):
    import automed

    folder = write_run(tmp_path / "run", ladder(0.04), CONSTRAINTS)
    write_reports(folder)
    run = automed.load(folder)
    board = run.leaderboard()
    text = str(board)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["rung", "status"] and len(lines) == 2 + 4
    assert all(len(line) < 160 for line in lines)  # readable in a terminal, unlike 34 keys per row
    unet3d = next(line for line in lines if line.startswith("unet3d"))
    assert "vs classical" in unet3d and "[" in unet3d and " 12 " in unet3d
    assert repr(board).startswith("Leaderboard (4 rungs")
    assert board[0]["rung"] == "classical" and isinstance(board, list)
    frame = run.leaderboard(as_frame=True)
    assert list(frame["rung"]) == ["classical", "unet2d", "unetpp", "unet3d"]
    assert frame.shape[1] == len(board[0]) and frame.loc[3, "comparison_n"] == 12


def test_report_says_on_which_cases_warns_on_few_and_draws_for_the_page(tmp_path):
    from automed.report.plots import dice_boxplot_png

    rng = np.random.default_rng(1)
    rungs = with_gains([done("classical", per_case(rng.uniform(0.7, 0.9, 24), FOLD0 + FOLD1), 10.0),
                        done("unet2d", per_case(rng.uniform(0.8, 0.95, 12), FOLD0), 40.0)])
    folder = write_run(tmp_path / "run", rungs, CONSTRAINTS)
    report = write_reports(folder)
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "## classical: per class, on its 24 evaluated cases" in md  # own cases, said so
    assert "| classical | " in md and "| 12 |" in md  # the leaderboard's n: the 12 comparison cases
    assert "Small sample: the rungs are compared on 12 case(s)" in md
    assert "![Dice per case on the comparison cases, per class and rung](dice_boxplot.png)" in md
    assert (folder / "dice_boxplot.png").is_file()
    table = md.split("## Per case")[1].split("##")[0]
    assert table.count("| case_0") == 12 and "classical left Dice / HD95" in table and "background" not in table
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Small sample" in html and "{&#39;" not in html and "{'" not in html  # no raw Python dicts
    assert "Hardware:" in html and "Versions: automed 0.1.0" in html
    import io

    from PIL import Image

    box = Image.open(io.BytesIO(dice_boxplot_png(report)))
    assert box.width <= 1100  # fits a 1,280 px window


def test_training_curves_and_configuration_render_from_the_details(tmp_path):
    from automed.report.plots import training_curves_png
    from automed.report.sections import chosen_configuration, realised_plan

    rung = done("unet3d", per_case(np.full(12, 0.85), FOLD0), 100.0)
    rung["details"] = {"config": {"width": 16, "hp": {"depth": 4}, "patch": [40, 56, 40], "lr": 0.003},
                       "search": {"n_trials": 3, "n_pruned": 1},
                       "trainings": [{"fold": 0, "epochs": 5, "best_epoch": 3, "stop_reason": "max epochs",
                                      "batch_size": 4, "seconds": 61.2, "history": [0.3, 0.6, 0.7, 0.8, 0.79],
                                      "train_loss": [1.2, 0.8, 0.6, 0.5, 0.45]}]}
    rung["estimate"]["allotted_seconds"] = 90.0
    head, rows = chosen_configuration(rung)
    assert ["hp.depth", "4"] in rows and ["patch", "40 x 56 x 40"] in rows and ["(search)", "3 trial(s), 1 pruned"] in rows
    head, rows = realised_plan(rung)
    assert rows[0] == ["fold 0", "5", "4", "max epochs", "4", "61.2"] and rows[1][0] == "(allotted)"
    assert training_curves_png(rung)[:8] == b"\x89PNG\r\n\x1a\n"
    assert training_curves_png({**rung, "details": {}}) is None
    folder = write_run(tmp_path / "run", [rung], CONSTRAINTS)
    write_reports(folder)
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "### Chosen configuration" in md and "### Realised plan" in md
    assert "![unet3d: training curves](rungs/unet3d/training_curves.png)" in md
    assert (folder / "rungs/unet3d/training_curves.png").is_file()
