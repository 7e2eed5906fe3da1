"""What a training run leaves behind and shows while it runs: the run folder's files
(spec.yaml, metrics.csv, curves.png, confusion.png/.csv, summary.txt) and per-epoch progress.

Every file is written atomically, so a run killed at any moment leaves readable records.
Plots use matplotlib's object API on an Agg canvas: no pyplot, no global backend switch.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import torch
import yaml
from tqdm import tqdm

from ..data.files import atomic_write_bytes

METRIC_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "raw_test_acc",
    "lr",
    "seconds",
    "images_per_s",
    "train_seconds",
    "test_seconds",
)
TIMING_FIELDS = (
    "seconds",
    "images_per_s",
    "train_seconds",
    "test_seconds",
)  # the only columns that differ between equal runs
RUNS_DIR = Path("runs")


def timestamp(now: datetime | None = None) -> str:
    """YYYYmmdd-HHMMSS: run folder names sort by start time."""
    return (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_spec_yaml(path: Path, data: dict[str, Any]) -> None:
    """The spec as trained: the user's data plus every train default filled in."""
    write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def write_metrics(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite metrics.csv whole from the run's history (kept in the checkpoint), so a resumed
    run never holds a duplicate or a missing row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: row.get(key, "") for key in METRIC_FIELDS} for row in rows)
    write_text(path, buffer.getvalue())


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_confusion_csv(path: Path, matrix: torch.Tensor, class_names: Sequence[str]) -> None:
    """Rows are true classes, columns predicted classes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *class_names])
    for name, row in zip(class_names, matrix.tolist(), strict=True):
        writer.writerow([name, *row])
    write_text(path, buffer.getvalue())


def new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: slow import
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def plot_curves(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Loss and accuracy per epoch, train and test, side by side."""
    figure = new_figure(10, 4)
    loss_axes, acc_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    for axes, metric, label in ((loss_axes, "loss", "loss"), (acc_axes, "acc", "accuracy")):
        for split in ("train", "test"):
            axes.plot(epochs, [row[f"{split}_{metric}"] for row in rows], marker="o", label=split)
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    save_figure(figure, path)


def plot_confusion(path: Path, matrix: torch.Tensor, class_names: Sequence[str]) -> None:
    """Counts as a heat map with the numbers written in, true classes down the side."""
    size = max(4.0, 0.5 * len(class_names) + 2)
    figure = new_figure(size, size)
    axes = figure.subplots()
    counts = matrix.cpu()
    axes.imshow(counts.numpy(), cmap="Blues")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = counts.max().item() / 2
    for (true, predicted), count in zip(
        _cells(len(class_names)), counts.flatten().tolist(), strict=True
    ):
        axes.text(
            predicted,
            true,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > threshold else "black",
        )
    save_figure(figure, path)


def _cells(n: int) -> list[tuple[int, int]]:
    return [(row, column) for row in range(n) for column in range(n)]


def format_epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The one line per epoch shown when there is no progress bar; with train.ema, the
    trained weights' accuracy follows the average's where they differ."""
    raw = row.get("raw_test_acc", row["test_acc"])
    trained = f" (trained weights {raw:.2%})" if raw != row["test_acc"] else ""
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.2%} | test loss {row['test_loss']:.4f} "
        f"acc {row['test_acc']:.2%}{trained} | lr {row['lr']:.3g} | {row['seconds']:.1f}s"
        f"{split_time(row)} {row['images_per_s']:,.0f} img/s"
    )


def split_time(row: dict[str, Any]) -> str:
    """' (train 8.1s, test 1.2s)' where the row has both (rows of older runs do not)."""
    if "train_seconds" not in row or "test_seconds" not in row:
        return ""
    return f" (train {row['train_seconds']:.1f}s, test {row['test_seconds']:.1f}s)"


class EpochProgress:
    """A tqdm bar for one epoch; where stderr is not a terminal (tqdm's `disable=None`), one
    plain line when the epoch ends instead. `enabled=False` shows nothing at all."""

    def __init__(
        self,
        epoch: int,
        epochs: int,
        batches: int,
        enabled: bool = True,
        stream: IO[str] | None = None,
    ):
        self.epochs = epochs
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar = tqdm(
            total=batches,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            disable=None if enabled else True,
            file=self.stream,
            leave=True,
            dynamic_ncols=True,
        )

    def update(self, done: int, loss: float, accuracy: float, images_per_s: float) -> None:
        """`done` batches of the epoch are finished, with these running statistics."""
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix(
            loss=f"{loss:.4f}", acc=f"{accuracy:.2%}", img_s=f"{images_per_s:,.0f}", refresh=False
        )

    def finish(self, row: dict[str, Any]) -> None:
        """Show the epoch's test result: in the bar, or as the plain line."""
        if self.bar.disable:
            if self.enabled:
                tqdm.write(format_epoch_line(row, self.epochs), file=self.stream)
            return
        postfix: dict[str, object] = {
            "loss": f"{row['train_loss']:.4f}",
            "acc": f"{row['train_acc']:.2%}",
            "test_acc": f"{row['test_acc']:.2%}",
            "img_s": f"{row['images_per_s']:,.0f}",
        }
        split = split_time(row)
        if split:
            postfix["time"] = split.strip(" ()")
        self.bar.set_postfix(postfix)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TensorBoard:
    """Epoch scalars as TensorBoard events in the run folder, when the optional `tensorboard`
    package is installed (`tensorboard --logdir runs/` then compares runs); else nothing."""

    def __init__(self, run_dir: Path, first_epoch: int) -> None:
        self.writer = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint
            self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=first_epoch)

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = row["epoch"]
        for split in ("train", "test"):
            self.writer.add_scalar(f"loss/{split}", row[f"{split}_loss"], step)
            self.writer.add_scalar(f"accuracy/{split}", row[f"{split}_acc"], step)
        self.writer.add_scalar("lr", row["lr"], step)
        self.writer.add_scalar("images_per_s", row["images_per_s"], step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """metrics.csv and curves.png, rewritten whole from the history (kept in the checkpoint):
    a resumed run repairs them even if a kill came between last.pt and these files."""
    write_metrics(run_dir / "metrics.csv", history)
    if history:
        plot_curves(run_dir / "curves.png", history)
