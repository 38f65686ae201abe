"""The tutorial's problem: circles, a 2-10-10-1 ReLU MLP, 1,000 full-batch Adam epochs.

torchclf (``fit`` with a test evaluation every epoch, as the tutorial's loop does) against the
tutorial's plain PyTorch loop, skorch and scikit-learn's MLPClassifier, all with the same model,
optimizer (Adam, lr 0.003, no weight decay), full batches and 1,000 epochs, on the same
standardized 800/200 split, in one process. scikit-learn runs every epoch (``tol=0``) and cannot
evaluate per epoch. Times are medians of ``--repeats`` interleaved rounds; the matmul floor is the
arithmetic of the forward and backward products at a large matrix product's speed on this machine,
measured in the same run. Prints a table and writes it as JSON.

Peers are not torchclf dependencies: ``pip install -r benchmarks/requirements.txt``; a missing
one is reported and skipped.

Run: OMP_NUM_THREADS=1 python benchmarks/circles.py [--repeats 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _timing import interleaved_medians, matmul_gflops, multiply_adds, write_report
from torch import nn

import torchclf

EPOCHS, LR, HIDDEN = 1000, 0.003, (10, 10)


def tutorial_module(n_in: int) -> nn.Sequential:
    """The tutorial's CircleModelV2 as a Sequential."""
    return nn.Sequential(
        nn.Linear(n_in, HIDDEN[0]),
        nn.ReLU(),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.ReLU(),
        nn.Linear(HIDDEN[1], 1),
    )


def run_torchclf(split, data) -> float:
    """The whole ``fit`` (standardizing included) and its test accuracy."""
    classifier = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=HIDDEN,
        lr=LR,
        epochs=EPOCHS,
        validation_fraction=0.0,  # every training row for the whole budget, as the peers
        ensemble=1,  # one network, as the peers
        eval_set=(split.X_test, split.y_test),
        seed=42,
    )
    return classifier.history.last["test_accuracy"]


def run_plain(split, data) -> float:
    """The tutorial's loop: forward, loss, zero_grad, backward, step, then a test pass."""
    X, y, X_test, y_test = data
    torch.manual_seed(42)
    model = tutorial_module(X.shape[1])
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    accuracy = 0.0
    for _ in range(EPOCHS):
        model.train()
        loss = loss_fn(model(X).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.inference_mode():
            test_logits = model(X_test).squeeze(1)
            loss_fn(test_logits, y_test)
            accuracy = ((test_logits > 0).float() == y_test).float().mean().item()
    return accuracy


def run_skorch(split, data) -> float:
    """The skorch NeuralNetBinaryClassifier with the same module, full batches, no validation."""
    from skorch import NeuralNetBinaryClassifier

    X, y, X_test, y_test = data
    torch.manual_seed(42)
    net = NeuralNetBinaryClassifier(
        _Squeezed(tutorial_module(X.shape[1])),
        max_epochs=EPOCHS,
        lr=LR,
        optimizer=torch.optim.Adam,
        batch_size=len(X),
        train_split=None,
        verbose=0,
    )
    net.fit(X.numpy(), y.numpy())
    return float((net.predict(X_test.numpy()) == y_test.numpy()).mean())


def run_sklearn(split, data) -> float:
    """MLPClassifier: same layers, Adam, full batches, every one of the 1,000 epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y, X_test, y_test = data
    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        solver="adam",
        learning_rate_init=LR,
        alpha=0.0,
        batch_size=len(X),
        max_iter=EPOCHS,
        tol=0.0,
        n_iter_no_change=EPOCHS + 1,
        random_state=42,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X.numpy(), y.numpy())
    return float(model.score(X_test.numpy(), y_test.numpy()))


class _Squeezed(nn.Module):
    """skorch's binary classifier wants logits of shape (n,)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.inner(X).squeeze(-1)


def matmul_floor_seconds(n_train: int, n_test: int, n_in: int) -> float:
    """Time of the products alone (forward + backward on train, forward on test) at full speed."""
    flops = 2 * multiply_adds([n_in, *HIDDEN, 1]) * (3 * n_train + n_test) * EPOCHS
    return flops / (matmul_gflops() * 1e9)


def main() -> None:
    """Run every contender ``--repeats`` times, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("circles_benchmark.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = torchclf.datasets.load("circles")
    split = torchclf.train_test_split(dataset.X, dataset.y, test_size=0.2, seed=42)
    mean, std = split.X_train.mean(axis=0), split.X_train.std(axis=0)
    data = (
        torch.from_numpy((split.X_train - mean) / std).float(),
        torch.from_numpy(split.y_train).float(),
        torch.from_numpy((split.X_test - mean) / std).float(),
        torch.from_numpy(split.y_test).float(),
    )
    contenders: dict[str, Callable] = {
        "torchclf": run_torchclf,
        "plain PyTorch": run_plain,
        "skorch": run_skorch,
        "scikit-learn": run_sklearn,
    }
    timed = interleaved_medians(
        {name: partial(run, split, data) for name, run in contenders.items()}, args.repeats
    )
    results = {
        name: {"seconds": median, "test_accuracy": accuracy}
        for name, (median, accuracy) in timed.items()
    }
    floor = matmul_floor_seconds(len(split.y_train), len(split.y_test), dataset.X.shape[1])

    samples = len(split.y_train) * EPOCHS
    ours = results["torchclf"]["seconds"]
    print(
        f"circles 2-10-10-1, {EPOCHS} full-batch Adam epochs, one thread, median of {args.repeats}"
    )
    print(f"{'':<16}{'seconds':>9}{'samples/s':>12}{'test acc':>10}{'torchclf is':>14}")
    for name, result in results.items():
        ratio = result["seconds"] / ours
        result["samples_per_second"] = samples / result["seconds"]
        result["torchclf_speedup"] = ratio
        print(
            f"{name:<16}{result['seconds']:>9.3f}{samples / result['seconds']:>12,.0f}"
            f"{result['test_accuracy']:>10.4f}{ratio:>13.2f}x"
        )
    print(
        f"{'matmul floor':<16}{floor:>9.3f}{samples / floor:>12,.0f}{'':>10}{floor / ours:>13.2f}x"
    )
    print("'torchclf is': how many times faster torchclf is (below 1: slower)")
    np.testing.assert_(results["torchclf"]["test_accuracy"] >= 0.99, "torchclf below 99%")
    report = {"epochs": EPOCHS, "floor_seconds": floor, "results": results}
    write_report(args.json, report)


if __name__ == "__main__":
    main()
