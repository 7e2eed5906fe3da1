"""How long the everyday commands take, each in a fresh process as a user runs them (torch's
import included), against the targets the README states; exits 1 when one is missed.

    python bench/latency.py [--rounds 3]

The timing bounds live here, not in the tests: a shared CI machine would make them flaky, and
a benchmark reports the figure instead of a pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BAD = ROOT / "tests" / "specs_bad"
YAML_TYPO = "name: typo\nlayers:\n  - conv_bn: {out_channels: 8\n"
# (label, command after `cli.py`, target seconds, expected exit code)
CASES = [
    (
        "build --summary squeezenet_v11",
        ["build", "specs/squeezenet_v11.yaml", "--summary"],
        10.0,
        0,
    ),
    ("validate, YAML typo (no torch)", ["validate", "{typo}"], 1.0, 2),
    ("refused: alias bomb", ["build", str(BAD / "alias_bomb.yaml"), "--summary"], 5.0, 2),
    ("refused: giant weights", ["build", str(BAD / "giant_weights.yaml"), "--summary"], 10.0, 2),
    ("refused: giant input", ["build", str(BAD / "giant_input.yaml"), "--summary"], 10.0, 2),
    ("refused: repeat 10^9", ["validate", str(BAD / "lang_repeat_bomb.yaml")], 5.0, 2),
    ("refused: nested repeats", ["validate", str(BAD / "lang_nested_repeat_bomb.yaml")], 5.0, 2),
    (
        "refused: 22 macros, each used twice",
        ["validate", str(BAD / "lang_macro_bomb.yaml")],
        5.0,
        2,
    ),
    ("validate, 4,900 removes of 4,902 layers", ["validate", "{removes}"], 5.0, 0),
]
SUMMARY_DEPTH2_TARGET = 0.5  # seconds for summarize(depth=2) of squeezenet_v11, in-process


def write_removes(folder: Path, count: int = 4900) -> Path:
    """A spec that extends a 4,902-layer one and removes all but two of its layers."""
    folder.mkdir(exist_ok=True)
    base = ["name: base", "input: {channels: 1, size: 8}", "num_classes: 10", "layers:"]
    base += [f"  - relu: {{}}\n    name: r{i}" for i in range(count)]
    base += ["  - conv: {out_channels: num_classes}", "  - gap: {}"]
    (folder / "base.yaml").write_text("\n".join(base) + "\n")
    child = ["extends: base.yaml", "remove:", *(f"  - r{i}" for i in range(count))]
    (folder / "child.yaml").write_text("\n".join(child) + "\n")
    return folder / "child.yaml"


def time_command(args: list[str], expected: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "cli.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != expected:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return time.perf_counter() - start


def summary_seconds() -> float:
    from netbuilder import compile_spec, read_spec
    from netbuilder.report.summary import summarize

    spec = read_spec(ROOT / "specs" / "squeezenet_v11.yaml")
    model, plan = compile_spec(spec)
    summarize(model, plan, spec)  # the first forward pays one-off kernel set-up
    start = time.perf_counter()
    summarize(model, plan, spec, depth=2)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per command (median)")
    args = parser.parse_args()
    typo = Path("/tmp") / "netbuilder-bench-typo.yaml"
    typo.write_text(YAML_TYPO, encoding="utf-8")
    removes = write_removes(Path("/tmp") / "netbuilder-bench-removes")
    missed = 0
    print(f"{'command':40} {'median':>8} {'target':>8}")
    for label, command, target, expected in CASES:
        command = [
            {"{typo}": str(typo), "{removes}": str(removes)}.get(word, word) for word in command
        ]
        median = statistics.median(time_command(command, expected) for _ in range(args.rounds))
        missed += median > target
        print(f"{label:40} {median:7.2f}s {target:7.1f}s{'  MISSED' if median > target else ''}")
    seconds = summary_seconds()
    missed += seconds > SUMMARY_DEPTH2_TARGET
    print(
        f"{'summarize(depth=2) squeezenet_v11':40} {seconds:7.2f}s "
        f"{SUMMARY_DEPTH2_TARGET:7.1f}s{'  MISSED' if seconds > SUMMARY_DEPTH2_TARGET else ''}"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
