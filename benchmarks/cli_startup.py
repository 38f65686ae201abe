"""How fast the CLI answers: whole processes of ``torchclf --help`` and of an argument error.

Beside them, a bare ``python -c pass`` (the floor) and ``python -c "import torch"`` (what the help
would cost if it imported torch). Medians of ``--repeats`` runs; writes the table as JSON.

Run: python benchmarks/cli_startup.py [--repeats 7] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.5  # issue 7: `torchclf --help` in under half a second


def seconds(command: list[str], repeats: int) -> float:
    """Median wall time of running ``command`` to completion."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Time each command and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path("cli_startup.json"))
    args = parser.parse_args()
    python = sys.executable
    commands = {
        "torchclf --help": [python, "-m", "torchclf", "--help"],
        "torchclf train --help": [python, "-m", "torchclf", "train", "--help"],
        "torchclf train --epochs x (error)": [python, "-m", "torchclf", "train", "--epochs", "x"],
        "python -c pass (floor)": [python, "-c", "pass"],
        "python -c 'import torch'": [python, "-c", "import torch"],
    }
    results = {name: seconds(command, args.repeats) for name, command in commands.items()}
    print(f"{'command':<36}{'seconds':>9}")
    for name, value in results.items():
        print(f"{name:<36}{value:>9.3f}")
    met = results["torchclf --help"] < TARGET_SECONDS
    print(f"torchclf --help under {TARGET_SECONDS} s: {'yes' if met else 'NO'}")
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
