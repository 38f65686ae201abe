"""64 circles configurations trained at once vs one after another with a plain PyTorch loop.

Widths 8/16/32/64 x depths 1/2 x learning rates 0.003/0.01/0.03/0.1 x seeds 0/1, Adam, 1000
full-batch epochs each, test metrics every epoch in both. The sequential baseline is the
tutorial's loop (nn.Sequential, torch.optim.Adam, forward / loss / zero_grad / backward / step,
then a test pass under inference_mode). Prints both times, their ratio, the best configuration
and the achieved GFLOP/s beside a large matrix product's on the same machine, from one run.

Run: OMP_NUM_THREADS=1 python benchmarks/sweep.py [--epochs N]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch import nn

import torchclf
from torchclf.sweep import Member, train_members

WIDTHS, DEPTHS, LRS, SEEDS = (8, 16, 32, 64), (1, 2), (0.003, 0.01, 0.03, 0.1), (0, 1)


def plain_loop(X, y, X_test, y_test, member: Member) -> float:
    """The tutorial's loop for one configuration; returns the final test accuracy."""
    torch.manual_seed(member.seed)
    layers, width = [], X.shape[1]
    for size in member.hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    model = nn.Sequential(*layers, nn.Linear(width, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=member.lr)
    for _ in range(member.epochs):
        model.train()
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.inference_mode():
            test_logits = model(X_test)
            loss_fn(test_logits, y_test)
            accuracy = ((test_logits > 0).float() == y_test).float().mean().item()
    return accuracy


def flops_per_epoch(member: Member, n_train: int, n_test: int, n_in: int) -> float:
    """Multiply-adds x 2: forward + backward (~2x forward) on train rows, forward on test rows."""
    sizes = [n_in, *member.hidden, 1]
    weights = sum(a * b for a, b in itertools.pairwise(sizes))
    return 2 * weights * (3 * n_train + n_test)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """A large float32 matrix product's speed on this machine, for scale."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    """Run both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    members = [
        Member(hidden=(width,) * depth, lr=lr, seed=seed, epochs=args.epochs)
        for width, depth, lr, seed in itertools.product(WIDTHS, DEPTHS, LRS, SEEDS)
    ]
    data = torchclf.datasets.load("circles")
    split = torchclf.train_test_split(data.X, data.y, test_size=0.2, seed=42)
    torchclf.fit(split.X_train, split.y_train, epochs=1)  # the optimizer's one-off imports

    start = time.perf_counter()
    classifiers = train_members(
        split.X_train, split.y_train, members, eval_set=(split.X_test, split.y_test)
    )
    vectorised = time.perf_counter() - start

    # The same standardized tensors for the plain loop, so both do the same work.
    encode = classifiers[0].encoder.transform
    X, X_test = torch.from_numpy(encode(split.X_train)), torch.from_numpy(encode(split.X_test))
    y = torch.from_numpy(split.y_train).float()[:, None]
    y_test = torch.from_numpy(split.y_test).float()[:, None]
    start = time.perf_counter()
    plain = [plain_loop(X, y, X_test, y_test, member) for member in members]
    sequential = time.perf_counter() - start

    total_flops = sum(
        flops_per_epoch(m, len(X), len(X_test), X.shape[1]) * m.epochs for m in members
    )
    best = max(
        range(len(members)),
        key=lambda i: (
            classifiers[i].history.last["test_accuracy"],
            -classifiers[i].history.last["test_loss"],
        ),
    )
    # float32 runs of 1000 epochs drift apart in the last bits, which can flip a point or two
    gap = max(
        abs(c.history.last["test_accuracy"] - p) for c, p in zip(classifiers, plain, strict=True)
    )
    print(
        f"{len(members)} configurations x {args.epochs} full-batch epochs on circles (one thread)"
    )
    print(f"{'':<28}{'seconds':>9}{'GFLOP/s':>9}")
    print(
        f"{'torchclf.sweep (stacked)':<28}{vectorised:>9.2f}{total_flops / vectorised / 1e9:>9.2f}"
    )
    print(f"{'plain PyTorch loop':<28}{sequential:>9.2f}{total_flops / sequential / 1e9:>9.2f}")
    print(f"{'2048x2048 matmul':<28}{'':>9}{matmul_gflops():>9.2f}")
    print(f"speed-up: {sequential / vectorised:.2f}x")
    print(f"largest difference in final test accuracy between the two: {gap:.4f}")
    m = members[best]
    print(
        f"best: hidden {m.hidden}, lr {m.lr}, seed {m.seed}: test accuracy "
        f"{classifiers[best].history.last['test_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
