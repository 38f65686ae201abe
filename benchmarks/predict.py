"""predict_proba on 1,000,000 rows x 32 features with one 32-256-256-4 ReLU MLP, four ways.

The same weights everywhere: a torchclf classifier (trained briefly on a slice) is copied into a
plain PyTorch module, a skorch NeuralNetClassifier and scikit-learn's MLPClassifier. torchclf gets
the raw rows and standardizes them itself; the peers get rows already standardized, so torchclf
does a little more work. Times are medians of ``--repeats`` interleaved rounds, one thread; the
matmul floor is the model's multiply-adds at a large matrix product's speed, timed in the same
rounds as the contenders. Prints a table and writes it as JSON.

Peers are not torchclf dependencies: ``pip install -r benchmarks/requirements.txt``.

Run: OMP_NUM_THREADS=1 python benchmarks/predict.py [--rows 1000000] [--repeats 3]
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

FEATURES, CLASSES, HIDDEN = 32, 4, (256, 256)


def plain_module(classifier) -> nn.Sequential:
    """The classifier's layers as the usual nn.Sequential."""
    module = nn.Sequential(
        nn.Linear(FEATURES, HIDDEN[0]),
        nn.ReLU(),
        nn.Linear(*HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN[1], CLASSES),
    )
    module.load_state_dict(classifier.model.layers.state_dict())
    return module.eval()


def plain_predict(module: nn.Module, X: np.ndarray, batch_rows: int = 4096) -> np.ndarray:
    """What a PyTorch user writes: batches under inference_mode, softmax, concatenate."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(X), batch_rows):
            outputs.append(module(torch.from_numpy(X[start : start + batch_rows])).softmax(1))
    return torch.cat(outputs).numpy()


def sklearn_model(classifier, X_small: np.ndarray, y_small: np.ndarray):
    """MLPClassifier with the classifier's weights (fitted one step for its structure first)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_small, y_small)
    linears = [m for m in classifier.model.layers if isinstance(m, nn.Linear)]
    model.coefs_ = [m.weight.detach().numpy().T.copy() for m in linears]
    model.intercepts_ = [m.bias.detach().numpy().copy() for m in linears]
    return model


def skorch_model(classifier):
    """A skorch NeuralNetClassifier around the same module, initialized without training."""
    from skorch import NeuralNetClassifier

    net = NeuralNetClassifier(
        plain_module(classifier), criterion=nn.CrossEntropyLoss, batch_size=4096, verbose=0
    )  # with CrossEntropyLoss skorch's predict_proba applies the softmax
    net.initialize()
    net.module_.load_state_dict(plain_module(classifier).state_dict())
    return net


def matmul_floor_seconds(rows: int, gflops: float) -> float:
    """The model's products for ``rows`` rows at a large matrix product's ``gflops``."""
    flops = 2 * rows * multiply_adds([FEATURES, *HIDDEN, CLASSES])
    return flops / (gflops * 1e9)


def main() -> None:
    """Build the four predictors, time them, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("predict_benchmark.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, FEATURES)).astype(np.float32) * 3 + 1
    y = (X[:, 0] > 1).astype(int) + 2 * (X[:, 1] > 1).astype(int)  # 4 classes
    classifier = torchclf.fit(X[:20_000], y[:20_000], hidden=HIDDEN, epochs=20, seed=0)
    encoded = classifier.encoder.transform(X)  # what the peers receive

    contenders: dict[str, Callable[[], np.ndarray]] = {
        "torchclf": lambda: classifier.predict_proba(X),
    }
    module = plain_module(classifier)
    contenders["plain PyTorch"] = lambda: plain_predict(module, encoded)
    try:
        net = skorch_model(classifier)
        contenders["skorch"] = lambda: net.predict_proba(encoded)
    except ImportError:
        print("skorch: not installed; skipped")
    try:
        sk = sklearn_model(classifier, encoded[:1000], y[:1000])
        contenders["scikit-learn"] = lambda: sk.predict_proba(encoded)
    except ImportError:
        print("scikit-learn: not installed; skipped")

    reference = contenders["torchclf"]()
    yardstick = MatmulYardstick()
    rounds = interleaved_rounds({**contenders, "matmul": yardstick}, args.repeats)
    gflops = yardstick.gflops(rounds["matmul"].median)
    results = {
        name: {
            "seconds": timed.median,
            "rows_per_second": args.rows / timed.median,
            "max_diff": float(np.abs(timed.result - reference).max()),
            "rounds": timed.seconds,
        }
        for name, timed in rounds.items()
        if name != "matmul"
    }
    floor = matmul_floor_seconds(args.rows, gflops)

    ours = results["torchclf"]["seconds"]
    print(f"predict_proba, {args.rows:,} x {FEATURES} rows, MLP 256-256, one thread")
    print(f"{'':<16}{'seconds':>9}{'rows/s':>12}{'max |p - ours|':>16}{'torchclf is':>14}")
    for name, result in results.items():
        result["torchclf_speedup"] = result["seconds"] / ours
        print(
            f"{name:<16}{result['seconds']:>9.3f}{result['rows_per_second']:>12,.0f}"
            f"{result['max_diff']:>16.2e}{result['torchclf_speedup']:>13.2f}x"
        )
    print(
        f"{'matmul floor':<16}{floor:>9.3f}{args.rows / floor:>12,.0f}"
        f"{'':>16}{floor / ours:>13.2f}x"
    )
    print("'torchclf is': how many times faster torchclf is (below 1: slower)")
    spread = {}
    if "scikit-learn" in rounds:
        spread = spread_report(rounds, yardstick, partial(matmul_floor_seconds, args.rows))
    report = {
        "rows": args.rows,
        "floor_seconds": floor,
        "matmul_gflops": gflops,
        "results": results,
        **spread,
    }
    write_report(args.json, report)


if __name__ == "__main__":
    main()
