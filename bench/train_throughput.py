"""Training throughput: netbuilder's runner versus a hand-written seed-style script, and the
compiled-spec module versus an equivalent hand-written nn.Module. A benchmark, not a test.

Seed style = torchvision `datasets.MNIST` + `transforms` (Resize, ToTensor, Normalize) +
`DataLoader(batch_size, shuffle=True)`, SGD, NLL/cross-entropy: what the seed repositories do.
Both sides train the same architecture at the same batch size in the same process, alternating
rounds so that machine noise hits both alike; the figure is the median of the rounds.

The `runner auto` row is `train.amp: auto` with `train.channels_last: auto`: each round
settles them by timing, as `train` does, then trains with what it kept (listed per round).

    python bench/train_throughput.py [--rounds 3] [--batches 60] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import transforms  # noqa: E402

import netbuilder  # noqa: E402
from netbuilder.data.loader import ImageDataset  # noqa: E402
from netbuilder.data.sources import resolve_data_dir  # noqa: E402
from netbuilder.training import speed  # noqa: E402
from netbuilder.training.inputs import load_split, make_loader, resolve_normalization  # noqa: E402
from netbuilder.training.loop import build_session, train_epoch  # noqa: E402
from netbuilder.training.records import EpochProgress  # noqa: E402


class Model5(nn.Module):
    """model5 written by hand, as the seed project does (same layers as specs/model5.yaml)."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Dropout(0.1),
            )

        self.features = nn.Sequential(
            block(1, 6),
            block(6, 16),
            block(16, 20),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 6, 1, bias=False),
            nn.ReLU(),
            block(6, 16),
            block(16, 20),
            nn.Conv2d(20, 10, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.features(x).mean(dim=(2, 3)), dim=1)


def squeezenet_v11_by_hand() -> nn.Module:
    """torchvision's SqueezeNet 1.1 adapted to 1-channel MNIST, as the seed project does."""
    model = torchvision.models.squeezenet1_1(num_classes=10)
    model.features[0] = nn.Conv2d(1, 64, kernel_size=3, stride=2)
    return model


class MobileNetV1(nn.Module):
    """MobileNet V1 on 1x32x32 written by hand, on the seed's stride table."""

    def __init__(self) -> None:
        super().__init__()

        def conv_bn(cin: int, cout: int, stride: int, groups: int = 1, k: int = 3) -> list:
            return [
                nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        widths = [
            (32, 64, 1),
            (64, 128, 2),
            (128, 128, 1),
            (128, 256, 2),
            (256, 256, 1),
            (256, 512, 2),
            *[(512, 512, 1)] * 5,
            (512, 1024, 2),
            (1024, 1024, 2),
        ]
        layers = conv_bn(1, 32, 1)
        for cin, cout, stride in widths:
            layers += conv_bn(cin, cin, stride, groups=cin) + conv_bn(cin, cout, 1, k=1)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


CASES = {
    "model5": (Model5, 28),
    "squeezenet_v11": (squeezenet_v11_by_hand, 96),
    "mobilenet_v1": (MobileNetV1, 32),
}


def seed_style_loader(size: int, batch_size: int, data_dir: Path) -> torch.utils.data.DataLoader:
    steps = [transforms.Resize(size)] if size != 28 else []
    steps += [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    dataset = torchvision.datasets.MNIST(
        str(data_dir), train=True, download=False, transform=transforms.Compose(steps)
    )
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)


def time_seed_style(model: nn.Module, loader, batches: int, warmup: int = 3) -> float:
    """Images/s of the classic loop (data loading included), after `warmup` batches."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    log_head = isinstance(model, Model5)
    model.train()
    seen, start = 0, 0.0
    for index, (x, y) in enumerate(loader):
        if index == warmup:
            seen, start = 0, time.perf_counter()
        optimizer.zero_grad()
        output = model(x)
        loss = F.nll_loss(output, y) if log_head else F.cross_entropy(output, y)
        loss.backward()
        optimizer.step()
        seen += len(y)
        if index + 1 == warmup + batches:
            break
    return seen / (time.perf_counter() - start)


def time_runner(
    name: str, batches: int, data_dir: Path, overrides: list[str], picks: list[str]
) -> tuple[float, float]:
    """Images/s of netbuilder's train_epoch over `batches` batches, and its warm-up seconds.
    An `auto` setting is settled first, as `train` does (its timing is not in the rate; the
    label it kept is appended to `picks`)."""
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml", [*overrides, "train.device=cpu"])
    device = torch.device("cpu")
    train_set = load_split(spec, spec.train, True, data_dir, progress=False)
    config = resolve_normalization(spec.train, train_set)
    if speed.is_measured(config):
        choice = speed.measure(spec, config, device)
        config = speed.apply(config, choice.best)
        picks.append(choice.best.label)
    count = (batches + 3) * config.batch_size
    subset = ImageDataset(train_set.images[:count], train_set.labels[:count], train_set.classes)
    loader = make_loader(spec, config, subset, True, device)
    session = build_session(spec, config, device, len(loader))
    with EpochProgress(1, 1, len(loader), False) as bar:
        stats = train_epoch(session, loader, 1, bar)
    return stats.images / stats.seconds, stats.warmup


def forward_backward_ratio(name: str, repeats: int = 15) -> float:
    """Median time of forward+backward, spec-compiled module / hand-written module."""
    factory, size = CASES[name]
    spec = netbuilder.read_spec(ROOT / "specs" / f"{name}.yaml")
    ours, theirs = netbuilder.build_model(spec), factory()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    x = torch.randn(128, 1, size, size)
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(repeats):
        for key, model in (("ours", ours), ("theirs", theirs)):
            start = time.perf_counter()
            model(x).sum().backward()
            times[key].append(time.perf_counter() - start)
    return statistics.median(times["ours"][2:]) / statistics.median(times["theirs"][2:])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=60, help="timed batches (model5)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--compile", action="store_true", help="also time train.compile=true")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    fp32 = ["train.amp=none"]
    variants = {
        "runner fp32": [*fp32, "train.channels_last=false"],
        "runner fp32 channels_last": [*fp32, "train.channels_last=true"],
        "runner bf16 channels_last": ["train.amp=bf16", "train.channels_last=true"],
        "runner auto": ["train.amp=auto", "train.channels_last=auto"],
    }
    if args.compile:
        variants["runner compiled"] = [*fp32, "train.compile=true"]
    for name in args.cases:
        factory, size = CASES[name]
        batches = args.batches if name == "model5" else max(8, args.batches // 6)
        results: dict[str, list[float]] = {"seed-style": [], **{v: [] for v in variants}}
        warmups: dict[str, float] = {}
        picks: list[str] = []
        loader = seed_style_loader(size, 128, data_dir)
        for _ in range(args.rounds):
            results["seed-style"].append(time_seed_style(factory(), loader, batches))
            for variant, overrides in variants.items():
                speed, warmup = time_runner(name, batches, data_dir, overrides, picks)
                results[variant].append(speed)
                warmups[variant] = warmup
        baseline = statistics.median(results["seed-style"])
        print(f"\n{name} (batch 128, {batches} timed batches, median of {args.rounds} rounds)")
        for variant, speeds in results.items():
            speed = statistics.median(speeds)
            extra = f", compile warm-up {warmups[variant]:.1f} s" if warmups.get(variant) else ""
            if variant == "runner auto":
                extra += f", kept {' / '.join(picks)}"
            print(f"  {variant:<26} {speed:8.0f} img/s   x{speed / baseline:.2f}{extra}")
        print(
            f"  forward+backward time, spec module / hand-written module: "
            f"{forward_backward_ratio(name):.3f}"
        )
    if not torch.cuda.is_available():
        print(
            "\nGPU speed (time to 99% on MNIST, squeezenet_v11 against the seed-style loop): "
            "not measured, this machine has no CUDA device"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
