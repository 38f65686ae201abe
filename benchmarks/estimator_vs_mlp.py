"""NeuralNetClassifier vs scikit-learn's MLPClassifier on its bundled real datasets.

Both get the same stratified 25% test split (seed 42), a StandardScaler in a Pipeline and the
same hidden sizes (100,), at their own defaults otherwise (so each trains for its own number of
epochs, shown). Prints test accuracy, fit time and epochs side by side, from one run on this
machine.

Run: OMP_NUM_THREADS=1 python benchmarks/estimator_vs_mlp.py
"""

from __future__ import annotations

import time
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from torchclf import datasets
from torchclf.estimator import NeuralNetClassifier

HIDDEN = (100,)


def main() -> None:
    """Fit both estimators on each dataset and print the table."""
    torch.set_num_threads(1)
    # One tiny fit first: creating torch's first optimizer imports its compiler (seconds, once).
    warm = datasets.load("iris")
    NeuralNetClassifier(max_epochs=1).fit(warm.X, warm.labels)
    print(
        f"{'dataset':<14}{'torchclf acc':>13}{'sklearn acc':>12}{'torchclf s':>11}{'sklearn s':>10}"
        f"{'torchclf epochs':>16}{'sklearn epochs':>15}"
    )
    for name in ("iris", "wine", "breast_cancer", "digits"):
        data = datasets.load(name)
        X_train, X_test, y_train, y_test = train_test_split(
            data.X, data.labels, test_size=0.25, stratify=data.labels, random_state=42
        )
        scores, times, epochs = [], [], []
        for estimator in (
            NeuralNetClassifier(hidden_layer_sizes=HIDDEN, random_state=42),
            MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=42),
        ):
            pipeline = make_pipeline(StandardScaler(), estimator)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pipeline.fit(X_train, y_train)
            times.append(time.perf_counter() - start)
            scores.append(pipeline.score(X_test, y_test))
            epochs.append(estimator.n_iter_)
        row = f"{name:<14}{scores[0]:>13.4f}{scores[1]:>12.4f}{times[0]:>11.2f}{times[1]:>10.2f}"
        print(f"{row}{epochs[0]:>16}{epochs[1]:>15}")


if __name__ == "__main__":
    main()
