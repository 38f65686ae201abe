"""scikit-learn's bundled real datasets as CSV files, trained by the torchclf CLI with its defaults.

Each dataset is written to a CSV file, trained with ``torchclf train --data FILE --target target
--test-size 0.25`` (stratified, seed 42, every other option at its default), and compared with
scikit-learn's ``MLPClassifier(random_state=42)`` at its defaults on exactly the same split, in
the same run. Prints a table (and writes it as JSON next to this file's output folder).

Run: OMP_NUM_THREADS=1 python benchmarks/real_datasets.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

TARGETS = {"breast_cancer": 0.97, "wine": 0.97, "iris": 0.95, "digits": 0.96}  # issue 4


def main() -> None:
    """Write the CSVs, run both classifiers on each, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for CSVs, runs and JSON")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="torchclf-real-"))
    out.mkdir(parents=True, exist_ok=True)

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from torchclf import datasets
    from torchclf.data.sources import DataSource

    rows = []
    for name, target in TARGETS.items():
        data = datasets.load(name)
        frame = pd.DataFrame(data.X, columns=data.feature_names).assign(target=data.labels)
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)

        start = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "torchclf",
            "train",
            "--data",
            str(path),
            "--target",
            "target",
            "--test-size",
            "0.25",
            "--quiet",
            "--overwrite",
            "--out",
            str(out / "runs"),
        ]
        subprocess.run(command, check=True, capture_output=True, text=True)
        torchclf_seconds = time.perf_counter() - start
        metrics = json.loads((out / "runs" / name / "metrics.json").read_text())

        source = DataSource(name=str(path), target=("target",), test_size=0.25, seed=42)
        split = source.split()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp = MLPClassifier(random_state=42).fit(split.X_train, split.y_train)
        sklearn_seconds = time.perf_counter() - start
        rows.append(
            {
                "dataset": name,
                "rows": len(frame),
                "features": data.X.shape[1],
                "torchclf": metrics["scores"]["accuracy"],
                "MLPClassifier": float(mlp.score(split.X_test, split.y_test)),
                "target": target,
                "torchclf s (whole CLI run)": torchclf_seconds,
                "MLPClassifier s (fit)": sklearn_seconds,
            }
        )

    print(
        f"{'dataset':<14}{'rows':>6}{'feat':>6}{'torchclf':>10}{'sklearn MLP':>13}"
        f"{'target':>8}  met"
    )
    for row in rows:
        met = "yes" if row["torchclf"] >= row["target"] else "NO"
        print(
            f"{row['dataset']:<14}{row['rows']:>6}{row['features']:>6}{row['torchclf']:>10.4f}"
            f"{row['MLPClassifier']:>13.4f}{row['target']:>8.2f}  {met}"
        )
    (out / "real_datasets.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nJSON: {out / 'real_datasets.json'}")


if __name__ == "__main__":
    main()
