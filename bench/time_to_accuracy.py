"""Wall time to a test accuracy on MNIST: netbuilder's runner (the bundled spec's own recipe)
against the seed-style loop (torchvision datasets + DataLoader, SGD lr 0.01 momentum 0.9, the
seeds' recipe), in the same process, on the same device. The clock starts before each side
reads its data and stops at the end of the first epoch whose test accuracy reaches the target
(tested after every epoch on both sides). Written for the GPU (`--device cuda`); it runs on a
CPU too, slowly. A benchmark, not a test.

    python bench/time_to_accuracy.py [--cases model5 squeezenet_v11] [--target 99.0]
                                     [--max-epochs 10] [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import transforms  # noqa: E402
from train_throughput import CASES, Model5  # noqa: E402

import netbuilder  # noqa: E402
from netbuilder.data.sources import resolve_data_dir  # noqa: E402
from netbuilder.training.run import run_training  # noqa: E402


class Reached(Exception):
    """Raised from the runner's epoch callback to stop the run at the target."""


def seed_loader(size: int, train: bool, data_dir: Path) -> torch.utils.data.DataLoader:
    steps = [transforms.Resize(size)] if size != 28 else []
    steps += [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    dataset = torchvision.datasets.MNIST(
        str(data_dir), train=train, download=False, transform=transforms.Compose(steps)
    )
    return torch.utils.data.DataLoader(dataset, batch_size=128 if train else 1000, shuffle=train)


def seed_accuracy(model: nn.Module, loader: Any, device: torch.device) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
    return 100.0 * correct / len(loader.dataset)


def seed_style(name: str, target: float, max_epochs: int, device: torch.device, data: Path):
    """(seconds, epochs, accuracy) of the classic loop, stopped at the target."""
    start = time.perf_counter()
    factory, size = CASES[name]
    torch.manual_seed(1)
    model = factory().to(device)
    train, test = seed_loader(size, True, data), seed_loader(size, False, data)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    accuracy = 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        for x, y in train:
            x, y = x.to(device), y.to(device)
            output = model(x)
            loss = (
                F.nll_loss(output, y) if isinstance(model, Model5) else F.cross_entropy(output, y)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy = seed_accuracy(model, test, device)
        if accuracy >= target:
            return time.perf_counter() - start, epoch, accuracy
    return None, max_epochs, accuracy


def runner(name: str, target: float, max_epochs: int, device: str, data: Path):
    """(seconds, epochs, accuracy) of `netbuilder train` on the bundled spec, stopped at the
    target (the spec's schedule still spans its own epochs)."""
    start = time.perf_counter()
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml", [f"train.device={device}"])
    rows: list[dict[str, Any]] = []

    def on_epoch(row: dict[str, Any]) -> None:
        rows.append(row)
        if 100 * row["test_acc"] >= target or len(rows) >= max_epochs:
            raise Reached

    with tempfile.TemporaryDirectory() as folder, contextlib.suppress(Reached):
        run_training(spec, Path(folder) / "run", data_dir=data, progress=False, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    accuracy = 100 * rows[-1]["test_acc"]
    return (seconds if accuracy >= target else None), len(rows), accuracy


def describe(label: str, result: tuple[float | None, int, float]) -> str:
    seconds, epochs, accuracy = result
    took = "not reached" if seconds is None else f"{seconds:7.1f} s"
    return f"  {label:<12} {took}  ({epochs} epochs, {accuracy:.2f}%)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cases", nargs="+", choices=sorted(CASES), default=["model5", "squeezenet_v11"]
    )
    parser.add_argument("--target", type=float, default=99.0, help="test accuracy, percent")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    data = resolve_data_dir(args.data_dir)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {where}; time to {args.target}% test accuracy")
    for name in args.cases:
        print(name)
        print(describe("seed-style", seed_style(name, args.target, args.max_epochs, device, data)))
        print(describe("runner", runner(name, args.target, args.max_epochs, args.device, data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
