"""Permutation importance on 100,000 rows x 30 columns: torchclf against scikit-learn's.

A table of 24 numeric columns (one in twenty values missing in four of them) and 6 categorical
ones (3 to 13 categories), a binary target driven by five of the columns. The
:class:`~torchclf.NeuralNetClassifier` is fitted on 20,000 rows with its defaults
(``max_epochs`` kept small: the timing is of the explanation, not of training), then each
column's permutation importance on ``--rows`` other rows is taken two ways, ``--repeats``
shuffles each, the log loss as the metric, the same seed:

- ``torchclf``: ``classifier_.permutation_importance`` (the rows encoded once, each network's
  first layer once, a rank-k update per shuffled column);
- ``scikit-learn``: ``sklearn.inspection.permutation_importance(estimator, ...,
  scoring="neg_log_loss")``, which calls the estimator's ``predict_proba`` on the shuffled
  table for every column and repeat.

Both give the same importances (the largest difference is printed). Times are medians of
``--rounds`` interleaved rounds, one thread (``OMP_NUM_THREADS=1``), with their range.

Run: OMP_NUM_THREADS=1 python benchmarks/explain.py [--rows 100000] [--rounds 3] [--repeats 3]

(About 8 minutes: scikit-learn's way takes over two of them a round.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import interleaved_rounds, write_report

import torchclf
from torchclf.nn.models import members_of

TRAIN_ROWS = 20_000


def make_table(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """24 numeric and 6 categorical columns; five of them carry a binary target."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"num{i}": rng.normal(size=rows) * (1 + i % 3) for i in range(24)})
    for i in range(6):
        X[f"cat{i}"] = rng.choice([f"c{j}" for j in range(3 + 2 * i)], rows)
    effect = X["cat0"].map({"c0": 1.0, "c1": -1.0, "c2": 0.0}).to_numpy()
    score = X["num0"] - 0.5 * X["num1"] + 0.3 * X["num2"] * X["num3"] + effect
    for i in range(4, 8):
        X.loc[rng.random(rows) < 0.05, f"num{i}"] = np.nan
    y = np.where(score + rng.logistic(size=rows) * 0.5 > 0, "yes", "no")
    return X, y


def main() -> None:
    """Fit once, then time both ways in interleaved rounds; print the table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("explain_benchmark.json"))
    args = parser.parse_args()

    from sklearn.inspection import permutation_importance

    X, y = make_table(TRAIN_ROWS + args.rows)
    estimator = torchclf.NeuralNetClassifier(max_epochs=args.max_epochs, random_state=0)
    estimator.fit(X[:TRAIN_ROWS], y[:TRAIN_ROWS])
    X_test, y_test = X[TRAIN_ROWS:].reset_index(drop=True), y[TRAIN_ROWS:]
    contenders = {
        "torchclf": lambda: estimator.classifier_.permutation_importance(
            X_test, y_test, n_repeats=args.repeats, random_state=0
        ).importances,
        "scikit-learn": lambda: permutation_importance(
            estimator, X_test, y_test, scoring="neg_log_loss", n_repeats=args.repeats,
            random_state=0,
        ).importances,
    }  # fmt: skip
    # warmed up already: the fit ran the networks and imported scikit-learn's scorers
    rounds = interleaved_rounds(contenders, args.rounds, warm_up=False)
    ours, theirs = rounds["torchclf"], rounds["scikit-learn"]
    difference = float(np.abs(ours.result - theirs.result).max())
    ratios = [s / o for s, o in zip(theirs.seconds, ours.seconds, strict=True)]
    print(
        f"{len(X_test):,} rows x {X.shape[1]} columns, {args.repeats} repeats, log loss, "
        f"{len(members_of(estimator.classifier_.model))} network(s) ({estimator.classifier_!r})"
    )
    print(f"{'':<14} {'median s':>9} {'range':>15}")
    for name, timed in rounds.items():
        spread = f"{min(timed.seconds):.2f}-{max(timed.seconds):.2f}"
        print(f"{name:<14} {timed.median:>9.2f} {spread:>15}")
    print(
        f"scikit-learn / torchclf: {np.median(ratios):.1f}x (range {min(ratios):.1f}-"
        f"{max(ratios):.1f}); largest difference of an importance: {difference:.1e}"
    )
    write_report(
        args.json,
        {
            "rows": len(X_test),
            "columns": X.shape[1],
            "repeats": args.repeats,
            "seconds": {name: timed.seconds for name, timed in rounds.items()},
            "ratios": ratios,
            "largest_difference": difference,
        },
    )


if __name__ == "__main__":
    main()
