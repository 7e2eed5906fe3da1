"""`build SPEC --input-size N [--input-size HxW ...]`: one spec checked at several input sizes,
each reported with its output, or where its feature map collapses, and with the layers whose
stride leaves the last rows or columns of their input unused."""

from __future__ import annotations

from dataclasses import dataclass, field

from tabulate import tabulate

from ..compiler.plan import PlannedNode
from ..errors import NetbuilderError
from ..spec import read_spec
from ..spec.registry import Shape, format_shape
from .summary import planned_summary


@dataclass(frozen=True)
class SizeReport:
    size: tuple[int, int]
    output: Shape | None = None
    params: int | None = None
    macs: int | None = None
    error: str | None = None  # the first problem at this size (a collapse, say)
    uneven: list[str] = field(default_factory=list)


def size_reports(path: str, overrides: list[str], sizes: list[tuple[int, int]]) -> list[SizeReport]:
    reports = []
    for height, width in sizes:
        try:
            spec = read_spec(path, [*overrides, f"input.size=[{height}, {width}]"])
            summary, plan = planned_summary(spec)
        except NetbuilderError as error:
            reports.append(SizeReport((height, width), error=_brief(error)))
            continue
        reports.append(
            SizeReport(
                (height, width),
                summary.output_shape,
                summary.total_params,
                summary.total_macs,
                uneven=uneven_strides(plan),
            )
        )
    return reports


def _brief(error: NetbuilderError) -> str:
    lines = str(error).splitlines()
    return lines[0].split("error: ", 1)[-1] + (
        f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""
    )


def uneven_strides(plan: list[PlannedNode]) -> list[str]:
    """Layers whose windows do not reach the end of their input: PyTorch drops the rest."""
    found = []
    for planned in plan:
        shape = planned.in_shape
        if len(shape) != 3:
            continue
        for axis, (size, side) in enumerate(((shape[1], "rows"), (shape[2], "columns"))):
            kernel, stride, padding = planned.block.window.along(axis)
            left = (size + 2 * padding - kernel) % stride if size + 2 * padding >= kernel else 0
            floor_out = (size + 2 * padding - kernel) // stride + 1
            rounded_up = len(planned.out_shape) == 3 and planned.out_shape[1 + axis] > floor_out
            if stride > 1 and left and not rounded_up:  # a ceil-mode pool covers the rest
                found.append(
                    f"{planned.node.name} leaves {left} of {size} {side} unused (stride {stride})"
                )
    return found


def format_size_report(path: str, reports: list[SizeReport]) -> str:
    rows = []
    for report in reports:
        size = f"{report.size[0]}x{report.size[1]}"
        if report.error:
            rows.append((size, "-", "-", "-", report.error))
        else:
            note = "; ".join(report.uneven) or "ok"
            rows.append(
                (size, format_shape(report.output), f"{report.params:,}", f"{report.macs:,}", note)
            )
    table = tabulate(
        rows,
        headers=("input", "output", "params", "MACs", "notes"),
        tablefmt="simple",
        disable_numparse=True,
    )
    return f"{path} at {len(reports)} input size{'s' if len(reports) != 1 else ''}\n{table}"
