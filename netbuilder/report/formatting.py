"""Rendering a Summary: a text report (tabulate) or one JSON document. Returns strings; the
caller decides where they go."""

from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate

from ..spec.registry import BlockDef, format_shape
from .summary import LayerRow, ReceptiveFieldRow, Summary

LAYER_HEADERS = ("Layer", "Block", "Output shape", "Params", "MACs")
LAYER_ALIGN = ("left", "left", "left", "right", "right")
RF_HEADERS = ("Layer", "n_in", "n_out", "j_in", "j_out", "r_in", "r_out", "start")
TABLE_FORMAT = "simple"


def format_table(summary: Summary) -> str:
    """The human report: layer table, totals, torchsummary's memory block, receptive field."""
    sections = [
        f"{summary.name}: input {format_shape(summary.input_shape)} -> output "
        f"{format_shape(summary.output_shape)}",
        layer_table(summary.layers, with_inputs=summary.is_graph),
        totals_lines(summary),
        memory_lines(summary),
        receptive_field_section(summary),
    ]
    return "\n\n".join(sections) + "\n"


def layer_table(rows: tuple[LayerRow, ...], with_inputs: bool = False) -> str:
    """One row per layer; a graph adds the layers each one reads (blank for a layer that reads
    the one above it, or for a module inside a block)."""
    body = [
        (r.name, r.type, format_shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}") for r in rows
    ]
    if not with_inputs:
        return tabulate(
            body,
            headers=LAYER_HEADERS,
            tablefmt=TABLE_FORMAT,
            colalign=LAYER_ALIGN,
            disable_numparse=True,
        )
    previous = [r.name for r in rows if r.depth == 1]
    above = dict(zip(previous, ["input", *previous[:-1]], strict=True))
    inputs = [
        ", ".join(r.inputs) if r.depth == 1 and r.inputs != (above[r.name],) else "" for r in rows
    ]
    return tabulate(
        [(*line, reads) for line, reads in zip(body, inputs, strict=True)],
        headers=(*LAYER_HEADERS, "Inputs"),
        tablefmt=TABLE_FORMAT,
        colalign=(*LAYER_ALIGN, "left"),
        disable_numparse=True,
    )


def totals_lines(summary: Summary) -> str:
    return "\n".join(
        [
            f"Total params: {summary.total_params:,}",
            f"Trainable params: {summary.trainable_params:,}",
            f"Non-trainable params: {summary.non_trainable_params:,}",
            f"Total MACs: {summary.total_macs:,}",
        ]
    )


def memory_lines(summary: Summary) -> str:
    """torchsummary's wording and two decimals, so the numbers compare at a glance."""
    memory = summary.memory
    return "\n".join(
        [
            f"Input size (MB): {memory.input:.2f}",
            f"Forward/backward pass size (MB): {memory.forward_backward:.2f}",
            f"Params size (MB): {memory.params:.2f}",
            f"Estimated Total Size (MB): {memory.total:.2f}",
            *peak_lines(summary),
        ]
    )


def peak_lines(summary: Summary) -> list[str]:
    """The computed inference peak (report/memory.py), beside torchsummary's estimate."""
    peak = summary.peak
    if peak is None:
        return []
    int8 = summary.peak_int8_bytes or 0
    return [
        f"Peak activation memory, inference (MB): {peak.bytes / 2**20:.2f} as float32, "
        f"{int8 / 2**20:.2f} as int8 (batch 1, at {peak.layer})"
    ]


def receptive_field_section(summary: Summary) -> str:
    if not summary.receptive_field:
        return "Receptive field: no feature-map layers"
    return "\n".join(
        [
            "Receptive field (along the height; start = centre of the first output's field)",
            receptive_field_table(summary.receptive_field),
            f"Final receptive field: {summary.final_receptive_field}",
        ]
    )


def receptive_field_table(rows: tuple[ReceptiveFieldRow, ...]) -> str:
    body = [
        (r.layer, r.n_in, r.n_out, r.j_in, r.j_out, r.r_in, r.r_out, f"{r.start:.1f}") for r in rows
    ]
    return tabulate(
        body,
        headers=RF_HEADERS,
        tablefmt=TABLE_FORMAT,
        colalign=("left", *["right"] * 7),
        disable_numparse=True,
    )


def format_json(summary: Summary) -> str:
    """The summary as one JSON document (shapes are one sample's, without the batch dim)."""
    return json.dumps(summary_to_dict(summary), indent=2) + "\n"


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    memory = summary.memory
    return {
        "name": summary.name,
        "input_shape": list(summary.input_shape),
        "output_shape": list(summary.output_shape),
        "depth": summary.depth,
        "total_params": summary.total_params,
        "trainable_params": summary.trainable_params,
        "non_trainable_params": summary.non_trainable_params,
        "total_macs": summary.total_macs,
        "memory_mb": {
            "input": memory.input,
            "forward_backward": memory.forward_backward,
            "params": memory.params,
            "total": memory.total,
        },
        "peak_activation_memory": None
        if summary.peak is None
        else {
            "float32_bytes": summary.peak.bytes,
            "int8_bytes": summary.peak_int8_bytes,
            "layer": summary.peak.layer,
        },
        "layers": [layer_to_dict(row) for row in summary.layers],
        "edges": [list(edge) for edge in summary.edges],
        "receptive_field": [receptive_row_to_dict(row) for row in summary.receptive_field],
        "final_receptive_field": summary.final_receptive_field,
    }


def layer_to_dict(row: LayerRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": row.type,
        "output_shape": None if row.output_shape is None else list(row.output_shape),
        "params": row.params,
        "trainable_params": row.trainable_params,
        "macs": row.macs,
        "depth": row.depth,
        "inputs": list(row.inputs),
    }


def receptive_row_to_dict(row: ReceptiveFieldRow) -> dict[str, Any]:
    return {
        "layer": row.layer,
        "n_in": row.n_in,
        "n_out": row.n_out,
        "j_in": row.j_in,
        "j_out": row.j_out,
        "r_in": row.r_in,
        "r_out": row.r_out,
        "start_in": row.start_in,
        "start": row.start,
    }


def format_blocks(blocks: list[BlockDef]) -> str:
    """The `blocks` listing: each block's one-line doc and its parameters with defaults."""
    sections = []
    for block in blocks:
        rows = [
            (p.name, p.type_name(), "required" if p.required else repr(p.default), p.arg.doc)
            for p in block.params
        ]
        table = (
            tabulate(
                rows, headers=("parameter", "type", "default", "meaning"), tablefmt=TABLE_FORMAT
            )
            if rows
            else "  (no parameters)"
        )
        sections.append(f"{block.name}: {block.doc}\n{table}")
    return "\n\n".join(sections) + "\n"
