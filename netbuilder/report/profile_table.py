"""`profile`'s output: the per-layer table and the totals, or the same figures as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tabulate import tabulate

from ..spec.registry import format_shape
from .profile import COVERAGE_MARGIN, Profile
from .timing import Timing


def format_duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def macs_per_us(macs: int, batch: int, timing: Timing) -> str:
    return f"{macs * batch / (timing.median * 1e6):,.0f}" if timing.median > 0 else "-"


def format_profile(profile: Profile) -> str:
    headers = ["layer", "block", "output", "MACs"]
    for batch in profile.batch_sizes:
        headers += [f"time (b{batch})", "spread", "share", "MACs/µs"]
    rows = []
    for layer in profile.layers:
        shape = format_shape(layer.output_shape)
        row: list[Any] = [layer.name, layer.block, shape, f"{layer.macs:,}"]
        for index, batch in enumerate(profile.batch_sizes):
            timing = layer.times[index]
            row += [
                format_duration(timing.median),
                f"±{timing.spread / 2:.0%}",
                f"{profile.share(layer, index):.1%}",
                macs_per_us(layer.macs, batch, timing),
            ]
        rows.append(row)
    table = tabulate(rows, headers=headers, disable_numparse=True, colalign=_align(headers))
    lines = [f"Profile: {profile.name}", "", table, "", *totals(profile), "", note(profile)]
    return "\n".join(lines)


def _align(headers: list[str]) -> tuple[str, ...]:
    return tuple("left" if h in ("layer", "block", "output") else "right" for h in headers)


def totals(profile: Profile) -> list[str]:
    """One line per batch size and runtime: time per batch, images per second."""
    lines = []
    for index, batch in enumerate(profile.batch_sizes):
        whole = profile.whole[index]
        lines.append(
            f"batch {batch}: sum of layers {format_duration(profile.layer_sum(index))} = "
            f"{profile.coverage(index):.0%} of the whole forward"
        )
        lines.append(f"  {'eager PyTorch':<18} {_rate(whole, batch)}")
        for runtime in profile.runtimes:
            lines.append(f"  {runtime.runtime:<18} {_rate(runtime.times[index], batch)}")
    return lines


def _rate(timing: Timing, batch: int) -> str:
    images = batch / timing.median if timing.median > 0 else 0.0
    return f"{format_duration(timing.median)} (±{timing.spread / 2:.0%}), {images:,.0f} images/s"


def note(profile: Profile) -> str:
    repeats = profile.whole[0].repeats if profile.whole else 0
    return (
        f"Measured on {profile.machine}. Each layer is timed by hooks inside real forward "
        f"passes (inference mode, median of {repeats} passes after warm-up, spread = half the "
        "interquartile range), the whole by passes without hooks in interleaved rounds; "
        f"the layers should add up to within {COVERAGE_MARGIN:.0%} of the whole."
    )


def profile_json(profile: Profile) -> dict[str, Any]:
    """The same figures, seconds throughout, with the derived ones (share, coverage)."""
    data = asdict(profile)
    data["coverage"] = [profile.coverage(i) for i in range(len(profile.batch_sizes))]
    data["layer_sum"] = [profile.layer_sum(i) for i in range(len(profile.batch_sizes))]
    for layer, row in zip(profile.layers, data["layers"], strict=True):
        row["share"] = [profile.share(layer, i) for i in range(len(profile.batch_sizes))]
    return data
