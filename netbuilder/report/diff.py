"""`diff A.yaml B.yaml`: two specs side by side, layer by layer, with their totals and the
ratios B / A. Layers are aligned as sequences (difflib's matcher): by name where the two
specs name their layers alike, else by block, so that two specs naming the same network
differently still pair layer with layer and mark only the ones that really differ."""

from __future__ import annotations

import difflib
import itertools

from tabulate import tabulate

from ..spec.registry import format_shape
from .summary import LayerRow, Summary

NAMES_AGREE = 0.5  # at least this share of layers matched by name: align by name


def align(
    left: list[LayerRow], right: list[LayerRow]
) -> list[tuple[LayerRow | None, LayerRow | None]]:
    """The two layer lists as pairs (one side None where a layer has no counterpart)."""
    by_name = difflib.SequenceMatcher(
        a=[r.name for r in left], b=[r.name for r in right], autojunk=False
    )
    matched = sum(block.size for block in by_name.get_matching_blocks())
    matcher = (
        by_name
        if matched >= NAMES_AGREE * max(len(left), len(right), 1)
        else (
            difflib.SequenceMatcher(
                a=[r.type for r in left], b=[r.type for r in right], autojunk=False
            )
        )
    )
    pairs: list[tuple[LayerRow | None, LayerRow | None]] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag in ("equal", "replace"):  # a replaced run pairs up side by side, row by row
            pairs += list(itertools.zip_longest(left[a0:a1], right[b0:b1]))
        else:
            pairs += [(row, None) for row in left[a0:a1]] + [(None, row) for row in right[b0:b1]]
    return pairs


def format_diff(first: Summary, second: Summary) -> str:
    left = [row for row in first.layers if row.depth == 1]
    right = [row for row in second.layers if row.depth == 1]
    rows = []
    for a, b in align(left, right):
        mark = " " if a and b and _same(a, b) else "*"
        if a is not None and b is not None and a.name != b.name:
            name = f"{a.name} / {b.name}"
        else:
            name = a.name if a is not None else b.name if b is not None else ""
        rows.append((mark, name, *_cells(a), *_cells(b)))
    table = tabulate(
        rows,
        headers=(
            "",
            "layer",
            f"{first.name} shape",
            "params",
            "MACs",
            f"{second.name} shape",
            "params",
            "MACs",
        ),
        tablefmt="simple",
        disable_numparse=True,
    )
    totals = tabulate(
        [
            (
                "parameters",
                f"{first.total_params:,}",
                f"{second.total_params:,}",
                _ratio(second.total_params, first.total_params),
            ),
            (
                "multiply-adds",
                f"{first.total_macs:,}",
                f"{second.total_macs:,}",
                _ratio(second.total_macs, first.total_macs),
            ),
            (
                "forward/backward MB",
                f"{first.memory.forward_backward:.2f}",
                f"{second.memory.forward_backward:.2f}",
                _ratio(second.memory.forward_backward, first.memory.forward_backward),
            ),
            (
                "receptive field",
                str(first.final_receptive_field),
                str(second.final_receptive_field),
                _ratio(second.final_receptive_field, first.final_receptive_field),
            ),
        ],
        headers=("total", first.name, second.name, f"{second.name} / {first.name}"),
        tablefmt="simple",
        disable_numparse=True,
    )
    return (
        f"{first.name} ({format_shape(first.input_shape)}) vs {second.name} "
        f"({format_shape(second.input_shape)}); * marks a layer that differs\n\n{table}\n\n"
        f"{totals}"
    )


def _same(a: LayerRow, b: LayerRow) -> bool:
    return (a.type, a.output_shape, a.params, a.macs) == (b.type, b.output_shape, b.params, b.macs)


def _cells(row: LayerRow | None) -> tuple[str, str, str]:
    if row is None:
        return "-", "-", "-"
    return format_shape(row.output_shape), f"{row.params:,}", f"{row.macs:,}"


def _ratio(new: float | None, old: float | None) -> str:
    if not new or not old:
        return "-"
    ratio = new / old
    return f"{ratio:.2f}x" if ratio >= 1 else f"{ratio:.2f}x (1/{1 / ratio:.2f})"
