"""Timing shared by the benchmarks: medians of interleaved rounds, and the matmul floor.

This machine is shared and its speed drifts by tens of percent over a minute. Timing each
contender's repeats back to back hands the drift to whoever runs during a slow spell; rounds
that run every contender once, in a rotating order, spread it over all of them.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Rounds:
    """One contender's seconds in each interleaved round, and its last result."""

    seconds: list[float]
    result: Any

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        """The fastest round: interference from the machine's other tenants only slows a run."""
        return min(self.seconds)


def interleaved_rounds(
    contenders: dict[str, Callable[[], Any]], repeats: int, *, warm_up: bool = True
) -> dict[str, Rounds]:
    """Each contender's seconds in ``repeats`` rounds that run every contender once.

    Every contender runs once untimed first (imports, caches), unless ``warm_up`` is False
    (a caller that warmed them up already, for contenders that take minutes); one that raises
    ImportError (a peer that is not installed) is reported and left out.
    """
    ready = {}
    for name, run in contenders.items():
        try:
            if warm_up:
                run()
        except ImportError as error:
            print(f"{name}: not installed ({error.name}); skipped")
            continue
        ready[name] = run
    names = list(ready)
    rounds = {name: Rounds([], None) for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            rounds[name].result = ready[name]()
            rounds[name].seconds.append(time.perf_counter() - start)
    return rounds


def interleaved_medians(
    contenders: dict[str, Callable[[], Any]], repeats: int
) -> dict[str, tuple[float, Any]]:
    """Each contender's median seconds over ``repeats`` rounds, and its last result."""
    rounds = interleaved_rounds(contenders, repeats)
    return {name: (timed.median, timed.result) for name, timed in rounds.items()}


class MatmulYardstick:
    """A large float32 matrix product, timed as one more contender of the interleaved rounds.

    Its median time gives the machine's matmul speed under the same conditions as the
    contenders (the speed of this shared machine drifts from round to round): the floors'
    yardstick.
    """

    def __init__(self, device: torch.device | str = "cpu", size: int = 2048, repeats: int = 5):
        self.a = torch.randn(size, size, device=device)
        self.b = torch.randn(size, size, device=device)
        self.out = torch.empty_like(self.a)
        self.repeats = repeats
        self.flops = 2 * size**3 * repeats

    def __call__(self) -> None:
        for _ in range(self.repeats):
            torch.mm(self.a, self.b, out=self.out)
        self.out[0, 0].item()  # waits for the device

    def gflops(self, seconds: float) -> float:
        """The speed, in GFLOP/s, of a run of :meth:`__call__` that took ``seconds``."""
        return self.flops / seconds / 1e9


def spread_report(
    rounds: dict[str, Rounds],
    yardstick: MatmulYardstick,
    floor_seconds: Callable[[float], float],
    peer: str = "scikit-learn",
) -> dict[str, Any]:
    """Print how the machine's speed moved over the rounds, and the fastest rounds' ratios.

    The medians are the benchmark's figures; the fastest round of each contender (and the
    yardstick's fastest, the lowest floor) show what the code does when the machine's other
    tenants leave it alone. ``rounds`` holds torchclf, ``peer`` and the yardstick ("matmul");
    ``floor_seconds`` turns GFLOP/s into the workload's floor. Returns the figures for the JSON.
    """
    rates = [yardstick.gflops(seconds) for seconds in rounds["matmul"].seconds]
    ours, theirs = rounds["torchclf"].best, rounds[peer].best
    floor = floor_seconds(max(rates))
    print(
        f"the machine is shared: its matmul yardstick ran at {min(rates):.0f}-{max(rates):.0f} "
        "GFLOP/s over these rounds"
    )
    print(
        f"fastest round of each: torchclf {ours:.3f} s, {peer} {theirs:.3f} s "
        f"(torchclf {theirs / ours:.2f}x faster), floor {floor:.3f} s ({floor / ours:.2f} of it)"
    )
    return {
        "matmul_gflops_rounds": rates,
        "fastest_rounds": {"torchclf": ours, peer: theirs, "floor": floor},
    }


def matmul_gflops(device: torch.device | str = "cpu", size: int = 2048, repeats: int = 5) -> float:
    """A large float32 matrix product's speed here, in GFLOP/s, measured once."""
    yardstick = MatmulYardstick(device, size, repeats)
    yardstick()  # warm-up
    start = time.perf_counter()
    yardstick()
    return yardstick.gflops(time.perf_counter() - start)


def multiply_adds(sizes: Sequence[int]) -> int:
    """Multiply-adds of one row's forward pass through an MLP with layer ``sizes``."""
    return sum(fan_in * fan_out for fan_in, fan_out in itertools.pairwise(sizes))


def write_report(path: Path, report: Any) -> None:
    """Write a benchmark's results as JSON and say where."""
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"JSON: {path}")
