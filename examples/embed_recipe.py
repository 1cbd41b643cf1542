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
    rungs=[{"name": "classical", "params": {"num_sigma": 4, "n_trials": 3, "models": ["lightgbm"]}}],
)
print(recipe.to_yaml())

run = automed.fit(recipe, HERE / "hippocampus", out=Path("runs/embedded"), budget="10min", overwrite=True)
for row in run.leaderboard():
    print(f"{row['rung']}: Dice {row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}], "
          f"fit {row['fit_seconds']:.0f} s, peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB")

masks = run.predict(HERE / "hippocampus" / "imagesTr", out=Path("runs/embedded-predictions"), overwrite=True)
print(f"wrote {len(masks)} masks, e.g. {masks[0]}")
