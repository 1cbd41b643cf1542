"""Embed automed in your own script: build a Recipe in code, fit, read the leaderboard, predict.

Run from the repository root:  .venv/bin/python examples/embed_recipe.py
"""

from pathlib import Path

import automed

HERE = Path(__file__).parent

recipe = automed.Recipe(
    task="segmentation",
    n_folds=3,
    random_state=42,
    full_ladder=True,
    rungs=[{"name": "classical", "params": {"num_sigma": 4, "n_trials": 3, "models": ["lightgbm"]}},
           {"name": "unet2d", "params": {"n_trials": 2, "widths": [16]}}],
)
print(recipe.to_yaml())

run = automed.fit(recipe, HERE / "hippocampus", out=Path("runs/embedded"), budget="6min", overwrite=True)
for row in run.leaderboard():
    if row["status"] != "done":
        print(f"{row['rung']}: {row['status']} ({row['reason']})")
        continue
    print(f"{row['rung']}: Dice {row['comparison_mean']:.3f} [{row['comparison_ci_low']:.3f}, "
          f"{row['comparison_ci_high']:.3f}] on {row['comparison_n']} cases, fit {row['fit_seconds']:.0f} s")
print(run.report_["recommendation"]["sentence"])

masks = run.predict(HERE / "hippocampus" / "imagesTr", out=Path("runs/embedded-predictions"), overwrite=True)
print(f"wrote {len(masks)} masks, e.g. {masks[0]}")
