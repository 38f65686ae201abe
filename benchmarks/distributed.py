"""Data-parallel training: samples per second on 1 and 2 processes, and the scaling efficiency.

The ``benchmarks/medium.py`` workload (200,000 x 32 rows, 4 classes, a 32-256-256-4 ReLU MLP,
global batches of 256, Adam), and the same with global batches of 4,096 (``--batch-sizes``),
trained for ``--epochs`` epochs by:

- ``torchclf fit``: ``torchclf.fit`` (standardizing, the per-epoch metrics: everything ``fit``
  does; every row trains, none held out) on its hand-written engine, data-parallel over the
  processes (:mod:`torchclf.distributed`);
- ``torchclf fit, autograd``: the same through the autograd loop (``engine="autograd"``);
- ``PyTorch DDP``: the plain loop PyTorch's documentation teaches: the module wrapped in
  ``DistributedDataParallel``, each process's rows cut by index from tensors with the same
  sharding (no DataLoader, which is 20-35x slower on tabular rows), Adam.

Each contender runs on 1 and on ``--processes`` processes started by PyTorch's launcher
(``torch.distributed.launcher``, what torchrun runs; gloo on the CPU, NCCL with ``--device
cuda``), each process with one thread (``OMP_NUM_THREADS=1``); and, the honest peer on a
machine of few cores, on 1 process with as many threads. A run's time is its training call on
rank 0, from a barrier after the processes start to the end of training (process start and
imports excluded); samples/s = training rows x epochs / time. Rounds are interleaved (each round
runs every configuration once, in a rotating order); the table gives medians and ranges.
Scaling efficiency = samples/s on N processes (or threads) / (N x samples/s on 1 process).

Each step ends in one all-reduce of the gradients (about 75,000 numbers), whose latency on gloo
over loopback is 1.3-1.6 ms on this 2-core machine whatever its size (1,000 numbers: 1.3 ms):
at 256 rows a step that is more than the step itself, at 4,096 rows a small part of it.

On a GPU machine: ``python benchmarks/distributed.py --device cuda --processes 2`` (one process
per GPU).

Run: OMP_NUM_THREADS=1 python benchmarks/distributed.py [--repeats 3] [--epochs 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _timing import write_report
from medium import BATCH, HIDDEN, LR, make_data, module

CONTENDERS = ("torchclf fit", "torchclf fit, autograd", "PyTorch DDP")


def worker(contender: str, rows: int, epochs: int, batch: int, device: str, out: Path) -> None:
    """One process of a run: train, and (rank 0) write the seconds training took."""
    import torch.distributed as dist

    import torchclf

    group = torchclf.distributed.init_from_environment(device)
    rank = 0 if group is None else group.rank
    X, y = make_data(rows)
    if group is not None:
        dist.barrier()
    start = time.perf_counter()
    if contender == "PyTorch DDP":
        trained = plain_ddp(X, y, epochs, batch, device)
    else:
        engine = "autograd" if contender.endswith("autograd") else "auto"
        classifier = torchclf.fit(
            X, y, hidden=HIDDEN, batch_size=batch, epochs=epochs, lr=LR, ensemble=1,
            early_stopping=False, validation_fraction=0.0, calibrate=False, engine=engine,
            seed=0, device=device,
        )  # fmt: skip
        trained = len(classifier.history.rows)
    seconds = time.perf_counter() - start
    if rank == 0:
        out.write_text(json.dumps({"seconds": seconds, "epochs": trained}))
    torchclf.distributed.close()


def plain_ddp(X: np.ndarray, y: np.ndarray, epochs: int, batch: int, device: str) -> int:
    """The textbook DistributedDataParallel loop over index batches; the epochs trained."""
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    where = torch.device(device if device != "auto" else "cpu")
    if where.type == "cuda":
        where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(0)
    features = torch.from_numpy((X - X.mean(0)) / X.std(0)).to(where)
    targets = torch.from_numpy(y).to(where)
    model: nn.Module = module().to(where)
    if world > 1:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    share = batch // world
    for epoch in range(epochs):
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(epoch))
        mine = order[rank::world][: len(features) // world].to(where)
        for start in range(0, len(mine), share):
            rows = mine[start : start + share]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(features[rows]), targets[rows]).backward()
            optimizer.step()
    return epochs


def run(
    contender: str, batch: int, processes: int, threads: int, args: argparse.Namespace
) -> float:
    """Launch one configuration; rank 0's training seconds."""
    import torchclf

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        module_args = [
            "--worker", contender, "--rows", str(args.rows), "--epochs", str(args.epochs),
            "--batch", str(batch), "--device", args.device, "--out", str(out),
        ]  # fmt: skip
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if processes == 1:  # one process: no launcher, no process group
            code = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, __file__, *module_args])
        else:
            code = torchclf.distributed.launch(processes, [__file__, *module_args])
        if code != 0:
            raise SystemExit(f"{contender} on {processes} processes failed (exit code {code})")
        return float(json.loads(out.read_text())["seconds"])


def main() -> None:
    """Run every configuration in interleaved rounds; print the table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-sizes", default=f"{BATCH},4096", help="global batch sizes")
    parser.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=Path("distributed_benchmark.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.epochs, args.batch, args.device, args.out)
        return

    n = args.processes
    batches = [int(size) for size in args.batch_sizes.split(",")]
    ways = ((1, 1), (n, 1), (1, n))  # (processes, threads each)
    setups = [(c, b, p, t) for b in batches for c in CONTENDERS for p, t in ways]
    seconds: dict[tuple[str, int, int, int], list[float]] = {setup: [] for setup in setups}
    for round_index in range(args.repeats):
        shift = round_index % len(setups)
        for setup in setups[shift:] + setups[:shift]:
            seconds[setup].append(run(*setup, args))
            print(f"round {round_index + 1}: {setup} {seconds[setup][-1]:.2f} s", flush=True)

    train_rows = args.rows * args.epochs  # every contender trains on every row
    report: dict[str, Any] = {"rows": args.rows, "epochs": args.epochs, "device": args.device}
    for batch in batches:
        print(f"\n{args.rows:,} x 32 rows, {args.epochs} epochs, batches of {batch}, {args.device}")
        print(f"{'contender':<24} {'processes':>9} {'threads':>7} {'samples/s':>10} "
              f"{'range':>17} {'efficiency':>10}")  # fmt: skip
        for contender in CONTENDERS:
            single = statistics.median(seconds[(contender, batch, 1, 1)])
            for processes, threads in ways:
                timed = seconds[(contender, batch, processes, threads)]
                rates = [train_rows / s for s in timed]
                median = statistics.median(rates)
                efficiency = single / statistics.median(timed) / (processes * threads)
                print(
                    f"{contender:<24} {processes:>9} {threads:>7} {median:>10,.0f} "
                    f"{min(rates):>8,.0f}-{max(rates):<8,.0f} {efficiency:>10.2f}"
                )
                key = f"{contender} | batch {batch} | {processes} processes | {threads} threads"
                report[key] = {
                    "seconds": timed,
                    "samples_per_second": rates,
                    "efficiency": efficiency,
                }
    write_report(args.json, report)


if __name__ == "__main__":
    main()
