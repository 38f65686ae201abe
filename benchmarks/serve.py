"""Serving: the HTTP service under load, micro-batched or not; ONNX Runtime against torch.

1. ``torchclf serve`` in its own process on a loopback port, a model of a 7-column table (numbers
   with gaps, two categorical columns); ``--clients`` concurrent clients (httpx, asyncio) send
   ``--requests`` one-row requests in all, within ``--time-limit`` seconds. Printed: requests/s,
   and p50/p99 latency, micro-batched (``--max-batch-size 64 --max-wait-ms 2``) and each
   request alone (``--max-batch-size 1``).
2. ``predict_proba`` of ``--rows`` raw rows (a DataFrame) by the torch path and by the model's
   ONNX export under ONNX Runtime (``OnnxModel``), both from the raw table (encoding included),
   in ``--repeats`` interleaved rounds: rows/s, medians.

Run: OMP_NUM_THREADS=1 python benchmarks/serve.py [--clients 20] [--requests 10000]
     [--rows 1000000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from _timing import interleaved_rounds, write_report

import torchclf


def make_table(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Seven columns: five numbers (gaps in two), an island and a sex; three classes."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
            "bill_length_mm": rng.normal(44, 5, rows),
            "bill_depth_mm": rng.normal(17, 2, rows),
            "flipper_length_mm": np.where(
                rng.random(rows) < 0.05, np.nan, rng.normal(200, 14, rows)
            ),
            "body_mass_g": np.where(rng.random(rows) < 0.05, np.nan, rng.normal(4200, 800, rows)),
            "sex": rng.choice(["male", "female", None], rows),
            "year": rng.integers(2007, 2010, rows).astype(float),
        }
    )
    score = (
        (frame.bill_length_mm - 44) / 5 + (frame.island == "Dream") - (frame.bill_depth_mm - 17) / 2
    )
    return frame, np.digitize(score + rng.normal(0, 0.3, rows), [-0.5, 0.5])


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(model: Path, port: int, batch: int) -> subprocess.Popen[str]:
    """``torchclf serve`` in its own process, once it answers /health."""
    command = [
        sys.executable, "-m", "torchclf", "serve", str(model), "--port", str(port),
        "--max-batch-size", str(batch), "--max-wait-ms", "2",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the service did not start: {process.communicate()}")


async def load(
    port: int, records: list[dict[str, Any]], clients: int, limit: float
) -> dict[str, Any]:
    """``clients`` clients send one row each per request until every row is sent or ``limit``."""
    latencies: list[float] = []
    failures = 0
    next_row = 0
    stop = time.monotonic() + limit

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal next_row, failures
        while next_row < len(records) and time.monotonic() < stop:
            row = records[next_row]
            next_row += 1
            start = time.perf_counter()
            answer = await session.post("/predict", json={"rows": [row]})
            latencies.append(time.perf_counter() - start)
            failures += answer.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        seconds = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": failures,
        "seconds": seconds,
        "requests_per_second": len(latencies) / seconds,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON records, NaN as null."""
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def main() -> None:
    """The load test both ways, then the rows/s of both engines; print them, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("serve_benchmark.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore", torchclf.TorchclfWarning)

    frame, y = make_table(2000)
    classifier = torchclf.fit(frame, y, seed=0)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        model = classifier.save(Path(folder) / "model.safetensors")
        onnx_file = classifier.to_onnx(Path(folder) / "model.onnx")
        records = records_of(make_table(args.requests, seed=1)[0])
        print(f"{args.clients} clients, {args.requests} one-row requests, loopback")
        print(f"{'service':<22} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
        for name, batch in (("micro-batched (64)", 64), ("one request at a time", 1)):
            port = free_port()
            process = start_service(model, port, batch)
            try:
                result = asyncio.run(load(port, records, args.clients, args.time_limit))
            finally:
                process.terminate()
                process.communicate(timeout=30)
            report[name] = result
            print(
                f"{name:<22} {result['requests_per_second']:>11.0f} {result['p50_ms']:>8.1f} "
                f"{result['p99_ms']:>8.1f} {result['failures']:>7}"
            )

        rows, _ = make_table(args.rows, seed=2)
        runner = torchclf.OnnxModel(onnx_file, classifier.encoder)
        rounds = interleaved_rounds(
            {
                "torch": lambda: classifier.predict_proba(rows),
                "onnx": lambda: runner.predict_proba(rows),
            },
            args.repeats,
        )
        difference = float(np.abs(rounds["torch"].result - rounds["onnx"].result).max())
        print(
            f"\npredict_proba of {args.rows:,} raw rows (encoding included), "
            f"median of {args.repeats} rounds"
        )
        for name, timed in rounds.items():
            print(f"{name:<6} {timed.median:>7.2f} s  {args.rows / timed.median:>12,.0f} rows/s")
            report[f"predict {name}"] = {"seconds": timed.seconds}
        print(f"largest difference of a probability: {difference:.1e}")
        report["largest difference"] = difference
    write_report(args.json, report)


if __name__ == "__main__":
    main()
