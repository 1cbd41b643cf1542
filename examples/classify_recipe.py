"""Embed automed classification in a script: a Recipe in code, fit on BreastMNIST, read the
test metrics, write predictions as CSV.

Run from the repository root:  .venv/bin/python examples/classify_recipe.py
"""

from pathlib import Path

import automed

DATA = Path(__file__).parent / "medmnist" / "breastmnist.npz"

recipe = automed.Recipe(
    task="classification",
    metric="auc",
    random_state=0,
    rungs=[{"name": "classical", "params": {"models": ["lightgbm", "logistic", "svm"], "n_trials": 10}}],
)
run = automed.fit(recipe, DATA, out=Path("runs/breast-example"), budget="5min", overwrite=True)
rung = run.report_["rungs"][0]
test = rung["test"]
print(f"test AUC {test['auc']['mean']:.3f} [{test['auc']['ci_low']:.3f}, {test['auc']['ci_high']:.3f}], "
      f"accuracy {test['accuracy']['mean']:.3f}, threshold {rung['threshold']:.3f}")
for name, stats in rung["per_class"].items():
    print(f"  class {name}: recall {stats['recall']:.3f}, precision {stats['precision']:.3f}")
run.predict(DATA, Path("runs/breast-example-test.csv"), overwrite=True)
