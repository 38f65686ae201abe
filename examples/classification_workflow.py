"""The classic PyTorch classification workflow, reproduced and then beaten with torchclf.

Part 1 re-runs the tutorial's models with the tutorial's settings (unstratified 80/20 split, raw
features, SGD lr 0.1, full batch, torch.manual_seed(42) before each model) and prints torchclf's
numbers next to the published ones. Part 2 trains with torchclf's defaults (stratified split,
standardized features, Adam lr 0.003, the weights of the best epoch on validation rows carved from
the training rows) and prints the test accuracy on every toy dataset, plus the
multi-label set against independent logistic regressions.

Run: python examples/classification_workflow.py   (about 6 s on one CPU core)
"""

from __future__ import annotations

import time

import numpy as np
import torch

import torchclf
from torchclf import datasets


def tutorial_split(name: str) -> torchclf.Split:
    data = datasets.load(name)
    return torchclf.train_test_split(data.X, data.y, test_size=0.2, stratify=False, seed=42)


def reproduce_tutorial() -> list[tuple[str, str, str]]:
    """The lesson's last printed lines (its epoch 900 of 0..999 is our epoch 901)."""
    rows = []
    circles = tutorial_split("circles")
    blobs = tutorial_split("blobs")
    runs = [
        (
            "model_1: 2-10-10-1 linear",
            circles,
            dict(hidden=(10, 10), activation="identity"),
            1000,
            "51.00% / 46.00%",
        ),
        (
            "model_3: 2-10-10-1 ReLU",
            circles,
            dict(hidden=(10, 10), activation="relu"),
            1000,
            "74.00% / 79.00%",
        ),
        (
            "model_4: 2-8-8-4 linear, blobs",
            blobs,
            dict(hidden=(8, 8), activation="identity"),
            100,
            "99.12% / 99.50%",
        ),
    ]
    for label, split, model, epochs, published in runs:
        clf = torchclf.fit(
            split.X_train,
            split.y_train,
            epochs=epochs,
            eval_set=(split.X_test, split.y_test),
            **model,
            **datasets.TUTORIAL,
        )
        # The lesson prints every epochs // 10 epochs, counting from 0, so its last line is its
        # epoch `epochs - epochs // 10`; history.rows[k] is our epoch k + 1, the lesson's k.
        line = clf.history.rows[epochs - epochs // 10]
        ours = f"{100 * line['train_accuracy']:.2f}% / {100 * line['test_accuracy']:.2f}%"
        rows.append((label, published, ours))
    return rows


def beat_tutorial() -> list[tuple[str, str, float, float]]:
    """torchclf's defaults on each toy dataset: (dataset, model, test accuracy, seconds)."""
    runs = [
        ("circles", "linear baseline", dict(hidden=())),
        ("circles", "2-10-10-1 ReLU", dict(hidden=(10, 10))),
        ("moons", "2-10-10-1 ReLU", dict(hidden=(10, 10))),
        ("blobs", "2-10-10-4 ReLU", dict(hidden=(10, 10))),
        ("spirals", "2-64-64-3 ReLU", dict(hidden=(64, 64))),
        ("xor", "2-10-10-1 ReLU", dict(hidden=(10, 10))),
    ]
    results = []
    for name, label, model in runs:
        data = datasets.load(name)
        split = torchclf.train_test_split(data.X, data.y, test_size=0.2, seed=42)
        start = time.perf_counter()
        clf = torchclf.fit(split.X_train, split.y_train, **model)
        seconds = time.perf_counter() - start
        results.append((name, label, clf.evaluate(split.X_test, split.y_test)["accuracy"], seconds))
    return results


def multilabel_versus_logistic() -> dict[str, tuple[float, float]]:
    """Per-label F1 and exact-match ratio: torchclf MLP vs independent logistic regressions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = datasets.load("multilabel")
    split = torchclf.train_test_split(data.X, data.y, test_size=0.2, seed=42)
    clf = torchclf.fit(split.X_train, split.y_train, hidden=(64, 64), label_names=data.class_names)
    ours = clf.evaluate(split.X_test, split.y_test)
    baseline = make_pipeline(StandardScaler(), MultiOutputClassifier(LogisticRegression()))
    baseline.fit(split.X_train, split.y_train)
    theirs = clf.task.evaluate(
        torch.from_numpy(np.stack([p[:, 1] for p in baseline.predict_proba(split.X_test)], 1)),
        torch.from_numpy(split.y_test),
    )
    table = {
        name: (ours.per_class[name]["f1"], theirs.per_class[name]["f1"])
        for name in data.class_names
    }
    table["exact match"] = (ours["accuracy"], theirs["accuracy"])
    return table


def main() -> None:
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a small machine
    print("Part 1: the tutorial's models with its settings (last printed train / test accuracy)")
    print(f"{'model':<34} {'published':>17} {'torchclf':>17}")
    for label, published, ours in reproduce_tutorial():
        print(f"{label:<34} {published:>17} {ours:>17}")

    print("\nPart 2: torchclf's defaults (Adam lr 0.003, standardized, stratified, best val epoch)")
    print(f"{'dataset':<10} {'model':<18} {'test accuracy':>14} {'seconds':>8}")
    for name, label, accuracy, seconds in beat_tutorial():
        print(f"{name:<10} {label:<18} {100 * accuracy:>13.2f}% {seconds:>8.2f}")

    print("\nMulti-label: per-label F1 and exact match, torchclf MLP vs logistic regressions")
    print(f"{'label':<12} {'torchclf':>9} {'logistic':>9}")
    for name, (ours, theirs) in multilabel_versus_logistic().items():
        print(f"{name:<12} {ours:>9.3f} {theirs:>9.3f}")


if __name__ == "__main__":
    main()
