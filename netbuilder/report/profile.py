"""Measured time per layer, beside the summary's MACs: what a deployed network costs where it
runs, since MACs alone mislead (a depthwise conv does few and is slow, a 1x1 conv the reverse).

How the times are taken: forward hooks on every spec layer read the clock as the layer starts
and as it ends (after a device sync where the device queues work), in real forward passes in
inference mode, so each layer runs with the caches and allocator state the layers before it
left; forwards without hooks time the whole model, in rounds interleaved with the hooked ones
so a slower second of a shared machine slows both alike. Each figure is the median over the
passes, with the quartiles as its spread. What the sum of the rows leaves out of the whole (the
graph's Python between layers), and what the hooks add to it, is reported as the coverage, the
sum over the whole, which the tests keep within `COVERAGE_MARGIN`. Timing each layer alone on
recorded inputs was tried first: warm caches made the rows add up to 60-85% of a batch-1
forward of model5, where the hooks give 95-105%.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..compiler.plan import PlannedNode
from ..spec.registry import Shape
from .summary import Summary
from .timing import Timing, summarise

COVERAGE_MARGIN = 0.15  # per-layer times add up to the whole within 15% (issue 17's bar)


@dataclass(frozen=True)
class LayerTime:
    """One spec layer's measured time per call, one Timing per profiled batch size."""

    name: str
    block: str
    output_shape: Shape
    macs: int  # for one sample, as the summary counts them
    times: tuple[Timing, ...]


@dataclass(frozen=True)
class RuntimeTime:
    """A whole model's time per call in another runtime (ONNX Runtime fp32 or int8)."""

    runtime: str
    times: tuple[Timing, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    machine: str
    batch_sizes: tuple[int, ...]
    layers: tuple[LayerTime, ...]
    whole: tuple[Timing, ...]  # the eager model's own forward
    total_macs: int
    runtimes: tuple[RuntimeTime, ...] = ()

    def layer_sum(self, index: int) -> float:
        return sum(layer.times[index].median for layer in self.layers)

    def share(self, layer: LayerTime, index: int) -> float:
        """The layer's part of the sum of the layers at batch size number `index`."""
        total = self.layer_sum(index)
        return layer.times[index].median / total if total > 0 else 0.0

    def coverage(self, index: int) -> float:
        """The sum of the layers' medians over the whole forward's median."""
        whole = self.whole[index].median
        return self.layer_sum(index) / whole if whole > 0 else 0.0


def machine_name(device: torch.device) -> str:
    """What the figures were measured on: they mean nothing without it."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = _cpu_model() or platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def profile_model(
    model: nn.Module,
    plan: list[PlannedNode],
    summary: Summary,
    batch_sizes: tuple[int, ...] = (1, 64),
    device: torch.device | str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
) -> Profile:
    """Time every layer of `plan` (the modules of `model`) and the whole model, in eval mode
    under inference mode, at each batch size; random inputs (values do not change the time).
    At least `repeats` passes of each kind, more for a fast model (`MIN_TIMED_S` of each)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    device = torch.device(device)
    model = model.to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    macs = {row.name: row.macs for row in summary.layers if row.depth == 1}
    per_layer: list[list[Timing]] = [[] for _ in plan]
    whole = []
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in batch_sizes:
            image = torch.randn((batch, *summary.input_shape), generator=generator).to(device)
            layer_samples, whole_samples = _timed_passes(model, plan, image, repeats, warmup, sync)
            for times, samples in zip(per_layer, layer_samples, strict=True):
                times.append(summarise(samples))
            whole.append(summarise(whole_samples))
    layers = tuple(
        LayerTime(p.node.name, p.node.block, p.out_shape, macs.get(p.node.name, 0), tuple(t))
        for p, t in zip(plan, per_layer, strict=True)
    )
    return Profile(
        summary.name,
        machine_name(device),
        tuple(batch_sizes),
        layers,
        tuple(whole),
        summary.total_macs,
    )


MIN_TIMED_S = 0.25  # seconds of hooked passes, and of plain ones, for each batch size
MAX_PASSES = 2000
ROUNDS = 5  # hooked and plain passes alternate this many times


def _timed_passes(
    model: nn.Module,
    plan: list[PlannedNode],
    image: Tensor,
    repeats: int,
    warmup: int,
    sync: Callable[[], None],
) -> tuple[list[list[float]], list[float]]:
    """Per-layer seconds of each hooked pass, and seconds of each plain pass."""
    for _ in range(max(1, warmup)):
        model(image)
    sync()
    start = time.perf_counter()
    model(image)
    sync()
    one = max(time.perf_counter() - start, 1e-6)
    passes = min(MAX_PASSES, max(repeats, math.ceil(MIN_TIMED_S / one)))
    per_round = math.ceil(passes / ROUNDS)
    layer_samples: list[list[float]] = [[] for _ in plan]
    whole_samples: list[float] = []
    for _ in range(ROUNDS):
        with _layer_clock(plan, layer_samples, sync):
            for _ in range(per_round):
                model(image)
        for _ in range(per_round):
            start = time.perf_counter()
            model(image)
            sync()
            whole_samples.append(time.perf_counter() - start)
    return layer_samples, whole_samples


@contextmanager
def _layer_clock(
    plan: list[PlannedNode], samples: list[list[float]], sync: Callable[[], None]
) -> Iterator[None]:
    """Hooks that append each layer's seconds per call to its list, removed on exit."""
    started = [0.0] * len(plan)
    handles = []
    for index, planned in enumerate(plan):

        def before(_module: nn.Module, _inputs: Any, index: int = index) -> None:
            sync()
            started[index] = time.perf_counter()

        def after(_module: nn.Module, _inputs: Any, _output: Any, index: int = index) -> None:
            sync()
            samples[index].append(time.perf_counter() - started[index])

        module = planned.block.module
        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
