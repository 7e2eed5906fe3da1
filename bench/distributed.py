"""Training images/s of one process against several (torchrun, DistributedDataParallel, gloo)
on this machine's CPU, same spec, same global batch: one epoch of MNIST each.

    python bench/distributed.py [--spec model5] [--processes 2] [--epochs 1]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(spec: str, processes: int, epochs: int, out: Path, threads: int) -> float:
    """Mean images/s over the epochs of one training run."""
    launcher = (
        [sys.executable]
        if processes == 1
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
        ]
    )
    command = [
        *launcher,
        str(ROOT / "cli.py"),
        "train",
        str(ROOT / "specs" / f"{spec}.yaml"),
        "--device",
        "cpu",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, cwd=ROOT, check=True, env=env, capture_output=True)
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return sum(float(row["images_per_s"]) for row in rows) / len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="model5")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        one = run(args.spec, 1, args.epochs, Path(folder) / "one", cores)
        many = run(
            args.spec,
            args.processes,
            args.epochs,
            Path(folder) / "many",
            max(1, cores // args.processes),
        )
    print(
        f"{args.spec}, {args.epochs} epoch(s) of MNIST, global batch from the spec, {cores} "
        "CPU cores"
    )
    rows = {
        f"1 process, {cores} threads": one,
        f"{args.processes} processes (torchrun, gloo), "
        f"{max(1, cores // args.processes)} thread(s) each": many,
    }
    for label, speed in rows.items():
        print(f"  {label:<48} {speed:8.0f} img/s   x{speed / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
