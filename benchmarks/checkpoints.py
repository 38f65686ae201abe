"""What checkpoints cost: the same fit without them, at the default interval, and every second.

Two workloads, each trained by ``torchclf.fit`` three ways in interleaved rounds (the machine is
shared; every round runs each way once, in a rotating order):

- ``medium``: 200,000 x 32 rows, 4 classes, a 32-256-256-4 MLP, batches of 256, 2 epochs (the
  ``benchmarks/medium.py`` workload, on the hand-written engine) for 5 epochs;
- ``digits``: scikit-learn's digits (1,797 x 64) with fit's defaults: 8 networks cross-fitted
  full batch, blended and calibrated, a second or two (where a fixed cost shows most).

"none" writes nothing; "default" writes into a temporary folder at ``checkpoint_every="auto"``
(every 60 s: on these workloads, the data's fingerprint and the checkpoint written once the
networks are trained); "every 1 s" sixty times as often, inside epochs too. Each round's time
is divided by the same round's "none": the table gives the median ratio and its range over the
rounds.

Run: OMP_NUM_THREADS=1 python benchmarks/checkpoints.py [--repeats 5] [--rows 200000] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _timing import interleaved_rounds, write_report
from medium import BATCH, HIDDEN, make_data
from sklearn.datasets import load_digits

import torchclf


def contenders(fit: Callable[..., Any], folder: Path) -> dict[str, Callable[[], Any]]:
    """The three ways to run ``fit``: without checkpoints, at the default interval, each second."""
    counter = iter(range(10**6))

    def with_checkpoints(every: str) -> Callable[[], Any]:
        # a fresh folder each time: a run never resumes, nor finds old files
        return lambda: fit(checkpoint_dir=folder / str(next(counter)), checkpoint_every=every)

    return {"none": fit, "default": with_checkpoints("auto"), "every 1 s": with_checkpoints("1s")}


def main() -> None:
    """Time every workload every way in interleaved rounds; print the ratios; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--json", type=Path, default=Path("checkpoints_benchmark.json"))
    args = parser.parse_args()

    X, y = make_data(args.rows)
    digits = load_digits()
    workloads: dict[str, Callable[..., Any]] = {
        "medium": lambda **kw: torchclf.fit(
            X, y, hidden=HIDDEN, batch_size=BATCH, epochs=5, lr=0.001, ensemble=1, seed=0, **kw
        ),
        "digits": lambda **kw: torchclf.fit(
            digits.data.astype(np.float32), digits.target, seed=0, **kw
        ),
    }
    report: dict[str, Any] = {}
    print(f"{'workload':<9} {'checkpoints':<11} {'median s':>9} {'vs none':>8} {'range':>13}")
    with tempfile.TemporaryDirectory() as temporary:
        for name, fit in workloads.items():
            rounds = interleaved_rounds(contenders(fit, Path(temporary) / name), args.repeats)
            base = rounds["none"].seconds
            report[name] = {}
            for way, timed in rounds.items():
                ratios = [s / b for s, b in zip(timed.seconds, base, strict=True)]
                median = statistics.median(ratios)
                report[name][way] = {"seconds": timed.seconds, "ratios": ratios}
                print(
                    f"{name:<9} {way:<11} {timed.median:>9.2f} {median:>8.3f} "
                    f"{min(ratios):>6.3f}-{max(ratios):.3f}"
                )
    write_report(args.json, report)


if __name__ == "__main__":
    main()
