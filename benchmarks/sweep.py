"""64 circles configurations trained at once vs one after another with a plain PyTorch loop.

Widths 8/16/32/64 x depths 1/2 x learning rates 0.003/0.01/0.03/0.1 x seeds 0/1, Adam, 1000
full-batch epochs each, test metrics every epoch in both. The sequential baseline is the
tutorial's loop (nn.Sequential, torch.optim.Adam, forward / loss / zero_grad / backward / step,
then a test pass under inference_mode). A third contender is torch.func's stacked module state
with ``vmap(grad(functional_call))``, the other way the issue asked to measure. Prints the times,
the speed-ups, the best configuration and the achieved GFLOP/s beside a large matrix product's
on the same machine, from one run.

Run: OMP_NUM_THREADS=1 python benchmarks/sweep.py [--epochs N] [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from _timing import matmul_gflops
from torch import nn

import torchclf
from torchclf.training.sweep import Member, train_members

WIDTHS, DEPTHS, LRS, SEEDS = (8, 16, 32, 64), (1, 2), (0.003, 0.01, 0.03, 0.1), (0, 1)


def plain_loop(X, y, X_test, y_test, member: Member) -> float:
    """The tutorial's loop for one configuration; returns the final test accuracy."""
    model = _sequential(member, X.shape[1]).to(X.device)
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


def vmap_sweep(X, y, X_test, y_test, members: list[Member]) -> list[float]:
    """torch.func's way: stacked module state, ``vmap(grad(functional_call))`` per architecture.

    The update is torchclf's stacked optimizer, so this differs from torchclf.sweep only in the
    forward and backward (autograd under vmap instead of the hand-written stacked ones).
    """
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    from torchclf.engine import Hyper, StackedOptimizer

    accuracies = [0.0] * len(members)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, member in enumerate(members):
        groups.setdefault(member.hidden, []).append(index)
    for indices in groups.values():
        models = [_sequential(members[i], X.shape[1]).to(X.device) for i in indices]
        stacked, buffers = stack_module_state(models)
        names = list(stacked)
        # stack_module_state's tensors require grad: the flat copy is plain data
        flat = torch.cat([stacked[name].reshape(len(indices), -1) for name in names], dim=1)
        flat = flat.detach()
        params, offset = {}, 0  # views into flat, so the optimizer's in-place step updates them
        for name in names:
            size = stacked[name][0].numel()
            params[name] = flat[:, offset : offset + size].view_as(stacked[name])
            offset += size
        base = models[0].to("meta")

        def loss_of(p, b, features, targets, base=base):
            logits = functional_call(base, (p, b), (features,))
            return nn.functional.binary_cross_entropy_with_logits(logits, targets)

        gradients = vmap(grad_and_value(loss_of), in_dims=(0, 0, None, None))

        def logits_of(p, b, features, base=base):
            return functional_call(base, (p, b), (features,))

        predict = vmap(logits_of, in_dims=(0, 0, None))
        optimizer = StackedOptimizer([Hyper(lr=members[i].lr) for i in indices], flat)
        for epoch in range(1, members[indices[0]].epochs + 1):
            grads, _ = gradients(params, buffers, X, y)
            step = torch.cat([grads[name].reshape(len(indices), -1) for name in names], dim=1)
            optimizer.step(flat, step, epoch)
            with torch.no_grad():
                test_logits = predict(params, buffers, X_test)  # (M, n, 1)
                correct = ((test_logits > 0).float() == y_test).float().mean(dim=(1, 2))
        for i, value in zip(indices, correct.tolist(), strict=True):
            accuracies[i] = value
    return accuracies


def _sequential(member: Member, n_in: int) -> nn.Sequential:
    torch.manual_seed(member.seed)
    layers, width = [], n_in
    for size in member.hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, 1))


def max_gap(accuracies: list[float], reference: list[float]) -> float:
    """The largest difference between two runs' final test accuracies."""
    return max(abs(a - b) for a, b in zip(accuracies, reference, strict=True))


def flops_per_epoch(member: Member, n_train: int, n_test: int, n_in: int) -> float:
    """Multiply-adds x 2: forward + backward (~2x forward) on train rows, forward on test rows."""
    sizes = [n_in, *member.hidden, 1]
    weights = sum(a * b for a, b in itertools.pairwise(sizes))
    return 2 * weights * (3 * n_train + n_test)


def main() -> None:
    """Run both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    members = [
        Member(hidden=(width,) * depth, lr=lr, seed=seed, epochs=args.epochs)
        for width, depth, lr, seed in itertools.product(WIDTHS, DEPTHS, LRS, SEEDS)
    ]
    data = torchclf.datasets.load("circles")
    split = torchclf.train_test_split(data.X, data.y, test_size=0.2, seed=42)
    torchclf.fit(split.X_train, split.y_train, epochs=1)  # the optimizer's one-off imports

    start = time.perf_counter()
    classifiers = train_members(  # returns after reading the metrics: the device is done
        split.X_train,
        split.y_train,
        members,
        eval_set=(split.X_test, split.y_test),
        device=args.device,
    )
    vectorised = time.perf_counter() - start

    # The same standardized tensors for the plain loop, so both do the same work.
    encode = classifiers[0].encoder.transform
    X = torch.from_numpy(encode(split.X_train)).to(device)
    X_test = torch.from_numpy(encode(split.X_test)).to(device)
    y = torch.from_numpy(split.y_train).float()[:, None].to(device)
    y_test = torch.from_numpy(split.y_test).float()[:, None].to(device)
    start = time.perf_counter()
    plain = [plain_loop(X, y, X_test, y_test, member) for member in members]
    sequential = time.perf_counter() - start

    start = time.perf_counter()
    vmapped = vmap_sweep(X, y, X_test, y_test, members)
    vmap_seconds = time.perf_counter() - start

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
    gap = max_gap([c.history.last["test_accuracy"] for c in classifiers], plain)
    print(
        f"{len(members)} configurations x {args.epochs} full-batch epochs on circles "
        f"({args.device}, one CPU thread)"
    )
    print(f"{'':<28}{'seconds':>9}{'GFLOP/s':>9}{'speed-up':>10}{'accuracy gap':>14}")
    contenders = [
        ("torchclf.sweep (stacked)", vectorised, gap),
        ("torch.func vmap (autograd)", vmap_seconds, max_gap(vmapped, plain)),
        ("plain PyTorch loop", sequential, 0.0),
    ]
    for label, seconds, accuracy_gap in contenders:
        print(
            f"{label:<28}{seconds:>9.2f}{total_flops / seconds / 1e9:>9.2f}"
            f"{sequential / seconds:>9.2f}x{accuracy_gap:>14.4f}"
        )
    print(f"{'2048x2048 matmul':<28}{'':>9}{matmul_gflops(device):>9.2f}")
    print("speed-up: against the plain loop; accuracy gap: largest final test accuracy difference")
    m = members[best]
    print(
        f"best: hidden {m.hidden}, lr {m.lr}, seed {m.seed}: test accuracy "
        f"{classifiers[best].history.last['test_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
