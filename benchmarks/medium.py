"""One epoch over 200,000 x 32 rows, 4 classes, a 32-256-256-4 ReLU MLP, batches of 256, Adam.

torchclf ``fit`` (standardizing and everything else included; ``init="xavier"``, the
initialisation scikit-learn uses) against the plain PyTorch loop (with a DataLoader, and with
index batches sliced from tensors), skorch and scikit-learn's MLPClassifier, in one process, one
thread, on the same generated data. Accuracy is measured on 20,000 held-out rows. The matmul
floor is the forward and backward products of the epoch at a large matrix product's speed, timed
in the same rounds as the contenders. Times are medians of ``--repeats`` interleaved rounds.
Prints a table and writes it as JSON.

Peers are not torchclf dependencies: ``pip install -r benchmarks/requirements.txt``.

Run: OMP_NUM_THREADS=1 python benchmarks/medium.py [--rows 200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _timing import (
    MatmulYardstick,
    interleaved_rounds,
    multiply_adds,
    spread_report,
    write_report,
)
from torch import nn

import torchclf

FEATURES, CLASSES, HIDDEN, BATCH, LR = 32, 4, (256, 256), 256, 0.001


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features with a non-linear 4-class rule plus label noise."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(rows, FEATURES)) * rng.uniform(0.5, 3, FEATURES)).astype(np.float32)
    weights = rng.normal(size=(FEATURES, CLASSES)) / np.sqrt(FEATURES)
    scores = np.tanh(X @ weights) + np.sin(X[:, :CLASSES]) + 0.3 * rng.normal(size=(rows, CLASSES))
    return X, scores.argmax(axis=1)


def module() -> nn.Sequential:
    """The same MLP for every plain PyTorch peer."""
    return nn.Sequential(
        nn.Linear(FEATURES, HIDDEN[0]),
        nn.ReLU(),
        nn.Linear(*HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN[1], CLASSES),
    )


def accuracy_of(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy of a plain module."""
    with torch.inference_mode():
        return float((model(X).argmax(1) == y).float().mean())


def run_torchclf(X, y, X_test, y_test, scaled, init: str = "xavier") -> float:
    """The whole fit on the raw rows: it standardizes them itself.

    ``init="xavier"`` is scikit-learn's initialisation (Glorot uniform), so that the two start
    alike; the plain PyTorch peers keep nn.Linear's default, and :func:`main` also reports
    torchclf's accuracy with that default.
    """
    classifier = torchclf.fit(
        X, y, hidden=HIDDEN, epochs=1, batch_size=BATCH, lr=LR, init=init, seed=0,
        validation_fraction=0.0,  # every row for one epoch, as the peers
        ensemble=1,  # one network, as the peers
    )  # fmt: skip
    return float((classifier.predict(X_test) == y_test).mean())


def run_plain_dataloader(X, y, X_test, y_test, scaled) -> float:
    """The textbook loop: TensorDataset, DataLoader(shuffle=True), torch.optim.Adam."""
    Xs, ys, Xs_test, ys_test = scaled
    torch.manual_seed(0)
    model, loss_fn = module(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(Xs, ys), batch_size=BATCH, shuffle=True
    )
    for X_batch, y_batch in loader:
        loss = loss_fn(model(X_batch), y_batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return accuracy_of(model, Xs_test, ys_test)


def run_plain_sliced(X, y, X_test, y_test, scaled) -> float:
    """A tuned plain loop: shuffled index batches sliced from tensors, foreach Adam."""
    Xs, ys, Xs_test, ys_test = scaled
    torch.manual_seed(0)
    model, loss_fn = module(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, foreach=True)
    order = torch.randperm(len(Xs))
    for start in range(0, len(Xs), BATCH):
        rows = order[start : start + BATCH]
        loss = loss_fn(model(Xs[rows]), ys[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return accuracy_of(model, Xs_test, ys_test)


def run_skorch(X, y, X_test, y_test, scaled) -> float:
    """The skorch NeuralNetClassifier, shuffled batches, no validation split."""
    from skorch import NeuralNetClassifier

    Xs, ys, Xs_test, ys_test = scaled
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        module(),
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=LR,
        max_epochs=1,
        batch_size=BATCH,
        iterator_train__shuffle=True,
        train_split=None,
        verbose=0,
    )
    net.fit(Xs.numpy(), ys.numpy())
    return float((net.predict(Xs_test.numpy()) == ys_test.numpy()).mean())


def run_sklearn(X, y, X_test, y_test, scaled) -> float:
    """MLPClassifier for one epoch (max_iter=1) with the same batches and learning rate."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    Xs, ys, Xs_test, ys_test = scaled
    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        batch_size=BATCH,
        learning_rate_init=LR,
        max_iter=1,
        alpha=0.0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(Xs.numpy(), ys.numpy())
    return float(model.score(Xs_test.numpy(), ys_test.numpy()))


def matmul_floor_seconds(rows: int, gflops: float) -> float:
    """Forward (1x) and backward (2x) products of one epoch at a large product's ``gflops``."""
    flops = 2 * multiply_adds([FEATURES, *HIDDEN, CLASSES]) * 3 * rows
    return flops / (gflops * 1e9)


def main() -> None:
    """Time every contender, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("medium_benchmark.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = make_data(args.rows + 20_000)
    X, X_test, y, y_test = X[: args.rows], X[args.rows :], y[: args.rows], y[args.rows :]
    mean, std = X.mean(axis=0), X.std(axis=0)
    scaled = (
        torch.from_numpy((X - mean) / std),
        torch.from_numpy(y),
        torch.from_numpy((X_test - mean) / std),
        torch.from_numpy(y_test),
    )
    contenders: dict[str, Callable] = {
        "torchclf": run_torchclf,
        "plain (DataLoader)": run_plain_dataloader,
        "plain (sliced)": run_plain_sliced,
        "skorch": run_skorch,
        "scikit-learn": run_sklearn,
    }
    yardstick = MatmulYardstick()
    runs = {name: partial(run, X, y, X_test, y_test, scaled) for name, run in contenders.items()}
    rounds = interleaved_rounds({**runs, "matmul": yardstick}, args.repeats)
    gflops = yardstick.gflops(rounds["matmul"].median)
    results = {
        name: {
            "seconds": timed.median,
            "samples_per_second": args.rows / timed.median,
            "test_accuracy": timed.result,
            "rounds": timed.seconds,
        }
        for name, timed in rounds.items()
        if name != "matmul"
    }
    floor = matmul_floor_seconds(args.rows, gflops)
    torch_init_accuracy = run_torchclf(X, y, X_test, y_test, scaled, init="torch")

    ours = results["torchclf"]["seconds"]
    print(
        f"one epoch, {args.rows:,} x {FEATURES}, MLP 256-256, batch {BATCH}, one thread, "
        f"median of {args.repeats}"
    )
    print(f"{'':<20}{'seconds':>9}{'samples/s':>11}{'test acc':>10}{'torchclf is':>13}")
    for name, result in results.items():
        result["torchclf_speedup"] = result["seconds"] / ours
        print(
            f"{name:<20}{result['seconds']:>9.3f}{result['samples_per_second']:>11,.0f}"
            f"{result['test_accuracy']:>10.4f}{result['torchclf_speedup']:>12.2f}x"
        )
    print(
        f"{'matmul floor':<20}{floor:>9.3f}{args.rows / floor:>11,.0f}"
        f"{'':>10}{floor / ours:>12.2f}x"
    )
    print("'torchclf is': how many times faster torchclf is; for the floor, torchclf's share of it")
    print(
        f"torchclf starts from init='xavier' (scikit-learn's); from nn.Linear's default init, "
        f"as the plain loops, its test accuracy is {torch_init_accuracy:.4f}"
    )
    spread = spread_report(rounds, yardstick, partial(matmul_floor_seconds, args.rows))
    report = {
        "rows": args.rows,
        "floor_seconds": floor,
        "matmul_gflops": gflops,
        "torchclf_accuracy_with_torch_init": torch_init_accuracy,
        "results": results,
        **spread,
    }
    write_report(args.json, report)


if __name__ == "__main__":
    main()
