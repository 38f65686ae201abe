"""Training straight from a Parquet file larger than memory, against the in-memory path.

Generates (once) a Parquet file of ``--rows`` rows x 32 float32 features and a 4-class label in
row groups of 262,144 rows, then trains in child processes, one thread each:

- ``torchclf.fit_parquet``: one epoch over the whole file (its statistics pass included);
- ``torchclf.fit`` on a slice that fits in memory (``--slice-rows``, read with pandas), one epoch,
  three times (once before the streaming run, twice after); the median counts.

Both train a 32-64-64-4 ReLU MLP with Adam at batch 1,024. The table shows each one's time,
samples/s, peak resident memory (the child's own ``ru_maxrss``) and the streaming path's
samples/s as a share of the in-memory path's. Writes the table as JSON.

Run: OMP_NUM_THREADS=1 python benchmarks/out_of_core.py [--rows 20000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FEATURES, GROUP_ROWS, HIDDEN, BATCH = 32, 262_144, (64, 64), 1024


def generate(path: Path, rows: int, chunk_rows: int = 1_048_576) -> None:
    """Write the file chunk by chunk: its size never has to fit in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(FEATURES, 4)) / np.sqrt(FEATURES)
    names = [f"x{i}" for i in range(FEATURES)]
    partial = path.with_suffix(".partial")
    writer = None
    for start in range(0, rows, chunk_rows):
        n = min(chunk_rows, rows - start)
        X = rng.normal(size=(n, FEATURES)).astype(np.float32)
        label = (np.tanh(X @ weights) + 0.3 * rng.normal(size=(n, 4))).argmax(axis=1)
        columns = [pa.array(X[:, i]) for i in range(FEATURES)] + [pa.array(label.astype(np.int8))]
        table = pa.Table.from_arrays(columns, names=[*names, "label"])
        if writer is None:
            writer = pq.ParquetWriter(partial, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=GROUP_ROWS)
    assert writer is not None
    writer.close()
    partial.rename(path)  # a half-written file never looks finished


def child(mode: str, path: Path, slice_rows: int) -> None:
    """Train once, print a JSON line with rows, seconds and this process's peak memory."""
    import torch

    torch.set_num_threads(1)
    import torchclf

    start = time.perf_counter()
    if mode == "stream":
        classifier = torchclf.fit_parquet(
            path, "label", hidden=HIDDEN, epochs=1, batch_size=BATCH, seed=0,
            validation_fraction=0.0,  # every row for one epoch, as the in-memory run
        )  # fmt: skip
        rows = _rows(path)
    else:
        import pyarrow.parquet as pq

        frame = pq.ParquetFile(path).iter_batches(batch_size=slice_rows)
        table = next(frame).to_pandas()
        start = time.perf_counter()  # the in-memory path's clock starts with the data in memory
        X, y = table.drop(columns="label").to_numpy(), table["label"].to_numpy()
        classifier = torchclf.fit(
            X, y, hidden=HIDDEN, epochs=1, batch_size=BATCH, seed=0, validation_fraction=0.0,
            ensemble=1,  # one network, as fit_parquet trains
        )  # fmt: skip
        rows = len(y)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    accuracy = classifier.history.last["train_accuracy"]
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb, "acc": accuracy}))


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def main() -> None:
    """Generate the file if needed, run both children, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--slice-rows", type=int, default=2_000_000)
    parser.add_argument("--dir", type=Path, default=Path("benchmark-data"))
    parser.add_argument("--json", type=Path, default=Path("out_of_core.json"))
    parser.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.slice_rows)
        return
    path = args.dir / f"rows-{args.rows}.parquet"
    if not path.exists():
        args.dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size / 2**30
        print(f"wrote {path} ({size:.2f} GiB) in {time.perf_counter() - start:.0f} s")
    runs: dict[str, list[dict]] = {"stream": [], "memory": []}
    # the short in-memory run before, and twice after, the long streaming one: its median is
    # less at the mercy of one slow spell of this shared machine
    for mode in ("memory", "stream", "memory", "memory"):
        command = [sys.executable, __file__, "--child", mode, "--path", str(path)]
        command += ["--slice-rows", str(args.slice_rows)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        output = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        runs[mode].append(json.loads(output.stdout.strip().splitlines()[-1]))
    results = {}
    for mode, done in runs.items():
        results[mode] = sorted(done, key=lambda run: run["seconds"])[len(done) // 2]  # median
        results[mode]["samples_per_second"] = results[mode]["rows"] / results[mode]["seconds"]
        results[mode]["runs_seconds"] = [run["seconds"] for run in done]
    share = results["stream"]["samples_per_second"] / results["memory"]["samples_per_second"]
    print(f"one epoch, MLP 32-64-64-4, batch {BATCH}, one thread")
    print(f"{'':<28}{'rows':>12}{'seconds':>9}{'samples/s':>12}{'peak MB':>9}{'train acc':>10}")
    labels = {"stream": "fit_parquet (whole file)", "memory": "fit (slice in memory)"}
    for mode, result in results.items():
        print(
            f"{labels[mode]:<28}{result['rows']:>12,}{result['seconds']:>9.1f}"
            f"{result['samples_per_second']:>12,.0f}{result['peak_mb']:>9.0f}{result['acc']:>10.4f}"
        )
    print(f"streaming samples/s: {share:.0%} of the in-memory path's")
    args.json.write_text(json.dumps({"results": results, "share": share}, indent=2) + "\n")


if __name__ == "__main__":
    main()
