"""A picture of the network from its plan: Mermaid (renders in GitHub markdown) or Graphviz
DOT (and SVG/PNG through Graphviz's `dot` program where it is installed).

Nodes carry the layer name, block, output shape and parameters; edges are the layers' inputs,
so residual additions and concatenations show where they read from. Repeated copies that are
alike (same blocks, shapes, parameter counts and wiring) collapse into their first copy, marked
`x n`, unless `expand` is set: numbered groups (`stage.1.conv1`, `stage.2.conv1`, ...) and a
chain of layers written once with `repeat:` (they share their spec line). Written by hand: a
diagram of a torch module (torchview) traces the forward and cannot know which layers the spec
repeated.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler.plan import PlannedNode
from ..errors import NetbuilderError
from ..spec.registry import format_shape
from ..spec.sources import INPUT
from .summary import Summary

FORMATS = (".mmd", ".dot", ".svg", ".png")


@dataclass(frozen=True)
class Layer:
    name: str
    block: str
    shape: str
    params: int
    inputs: tuple[str, ...]
    origin: tuple[str | None, int] | None  # the spec line the layer was written on


@dataclass
class Group:
    """Consecutive layers of one copy (`prefix.index.*`), or a single ungrouped layer."""

    key: tuple[str, str] | None  # (prefix, index) of a repeated copy
    layers: list[Layer] = field(default_factory=list)
    copies: int = 1
    last_index: str = ""
    last_name: str = ""  # the last copy's last layer
    absorbed: dict[str, str] = field(default_factory=dict)  # later copies' layer -> drawn one

    def local(self, name: str) -> str:
        return name if self.key is None else name[len(".".join(self.key)) :]

    def signature(self) -> tuple[object, ...]:
        own = {layer.name for layer in self.layers}
        return tuple(
            (
                self.local(layer.name),
                layer.block,
                layer.shape,
                layer.params,
                tuple(self.local(s) if s in own else "outside" for s in layer.inputs),
            )
            for layer in self.layers
        )


def copy_key(name: str) -> tuple[str, str] | None:
    """`stage2.1.conv1` -> ('stage2', '1'): the last numbered part names the copy."""
    parts = name.split(".")
    for index in range(len(parts) - 1, 0, -1):
        if parts[index].isdigit():
            return ".".join(parts[:index]), parts[index]
    return None


def layers_of(summary: Summary, plan: list[PlannedNode]) -> list[Layer]:
    origins = {
        p.node.name: (p.node.location.file, p.node.location.line)
        for p in plan
        if p.node.location.line is not None
    }
    return [
        Layer(
            row.name,
            row.type,
            format_shape(row.output_shape) if row.output_shape else "?",
            row.params,
            row.inputs,
            origins.get(row.name),
        )
        for row in summary.layers
        if row.depth == 1
    ]


def groups_of(layers: list[Layer], expand: bool) -> list[Group]:
    groups: list[Group] = []
    for layer in layers:
        key = None if expand else copy_key(layer.name)
        if groups and key is not None and groups[-1].key == key:
            groups[-1].layers.append(layer)
        else:
            groups.append(Group(key, [layer], last_index=key[1] if key else ""))
        groups[-1].last_name = layer.name
    return groups if expand else collapse(groups)


def collapse(groups: list[Group]) -> list[Group]:
    """Runs of alike copies become their first copy, counted."""
    runs: list[Group] = []
    for group in groups:
        previous = runs[-1] if runs else None
        if previous is not None and (
            numbered_copy(previous, group) or repeated_line(previous, group)
        ):
            for first, later in zip(previous.layers, group.layers, strict=True):
                previous.absorbed[later.name] = first.name
            previous.copies += 1
            previous.last_index = group.key[1] if group.key else ""
            previous.last_name = group.last_name
            continue
        runs.append(group)
    return runs


def numbered_copy(run: Group, group: Group) -> bool:
    """`stage.2.*` after alike `stage.1.*`."""
    return (
        group.key is not None
        and run.key is not None
        and run.key[0] == group.key[0]
        and run.signature() == group.signature()
    )


def repeated_line(run: Group, group: Group) -> bool:
    """One layer written once with `repeat:`, reading the copy before it, alike to it."""
    if run.key is not None or group.key is not None or len(run.layers) + len(group.layers) != 2:
        return False
    first, layer = run.layers[0], group.layers[0]
    return (
        first.origin is not None
        and layer.origin == first.origin
        and layer.inputs == (run.last_name,)
        and (layer.block, layer.shape, layer.params) == (first.block, first.shape, first.params)
    )


@dataclass(frozen=True)
class Diagram:
    """Nodes (id, label, cluster title or None) and edges (id, id), ready to render."""

    nodes: tuple[tuple[str, str, str | None], ...]
    edges: tuple[tuple[str, str], ...]


def diagram(summary: Summary, plan: list[PlannedNode], expand: bool = False) -> Diagram:
    layers = layers_of(summary, plan)
    groups = groups_of(layers, expand)
    drawn: dict[str, str] = {INPUT: "n0"}  # layer name -> node id of what stands for it
    nodes: list[tuple[str, str, str | None]] = [
        ("n0", f"input<br/>{format_shape(summary.input_shape)}", None)
    ]
    for group in groups:
        title = _title(group)
        single = len(group.layers) == 1 and title is not None
        for layer in group.layers:
            node = f"n{len(nodes)}"
            drawn[layer.name] = node
            label = _label(layer, f"-{group.last_name} x {group.copies}" if single else "")
            nodes.append((node, label, None if single else title))
    for group in groups:  # a collapsed copy's layers stand for their first copy's
        for later, first in group.absorbed.items():
            drawn[later] = drawn[first]
    edges = list(_edges(layers, drawn))
    return Diagram(tuple(nodes), tuple(dict.fromkeys(edges)))


def _edges(layers: list[Layer], drawn: dict[str, str]) -> Iterator[tuple[str, str]]:
    for layer in layers:
        for source in layer.inputs:
            if drawn[source] != drawn[layer.name]:
                yield drawn[source], drawn[layer.name]


def _title(group: Group) -> str | None:
    if group.copies == 1:
        return None
    if group.key is None:
        return f"{group.layers[0].name}-{group.last_name} x {group.copies}"
    return f"{group.key[0]}.{group.key[1]}-{group.last_index} x {group.copies}"


def _label(layer: Layer, suffix: str) -> str:
    return f"{layer.name}{suffix}<br/>{layer.block} · {layer.shape} · {layer.params:,} params"


def to_mermaid(picture: Diagram) -> str:
    lines = ["flowchart TD"]
    for cluster, members in _clusters(picture):
        if cluster is not None:
            lines.append(f'  subgraph c{len(lines)}["{_mermaid_text(cluster)}"]')
        for node, label in members:
            lines.append(f'  {node}["{_mermaid_text(label)}"]')
        if cluster is not None:
            lines.append("  end")
    lines += [f"  {a} --> {b}" for a, b in picture.edges]
    return "\n".join(lines) + "\n"


def to_dot(picture: Diagram, name: str) -> str:
    lines = [f"digraph {_dot_text(name)} {{", "  node [shape=box, fontname=Helvetica];"]
    for index, (cluster, members) in enumerate(_clusters(picture)):
        indent = "  " if cluster is None else "    "
        if cluster is not None:
            lines.append(f"  subgraph cluster_{index} {{")
            lines.append(f"    label={_dot_text(cluster)};")
        for node, label in members:
            lines.append(f"{indent}{node} [label={_dot_text(label.replace('<br/>', chr(10)))}];")
        if cluster is not None:
            lines.append("  }")
    lines += [f"  {a} -> {b};" for a, b in picture.edges]
    return "\n".join([*lines, "}"]) + "\n"


def _clusters(picture: Diagram) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """Consecutive nodes of one cluster together (a cluster's nodes are consecutive)."""
    out: list[tuple[str | None, list[tuple[str, str]]]] = []
    for node, label, cluster in picture.nodes:
        if out and cluster is not None and out[-1][0] == cluster:
            out[-1][1].append((node, label))
        else:
            out.append((cluster, [(node, label)]))
    return out


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_diagram(
    summary: Summary, plan: list[PlannedNode], out: Path, expand: bool = False
) -> Path:
    """Write `out` in the format its suffix names; SVG and PNG need Graphviz's `dot`."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise NetbuilderError(
            f"--diagram {out}: unknown format '{suffix or out.name}'; expected a file ending "
            + ", ".join(FORMATS)
        )
    picture = diagram(summary, plan, expand)
    if suffix == ".mmd":
        out.write_text(to_mermaid(picture), encoding="utf-8")
        return out
    dot_source = to_dot(picture, summary.name)
    if suffix == ".dot":
        out.write_text(dot_source, encoding="utf-8")
        return out
    program = shutil.which("dot")
    if program is None:
        raise NetbuilderError(
            f"--diagram {out}: {suffix} needs Graphviz's dot program, which is not on PATH; "
            "write .dot or .mmd instead (or install graphviz)"
        )
    rendered = subprocess.run(
        [program, f"-T{suffix[1:]}"], input=dot_source.encode(), capture_output=True, check=False
    )
    if rendered.returncode != 0:
        raise NetbuilderError(f"--diagram {out}: dot failed: {rendered.stderr.decode()[:200]}")
    out.write_bytes(rendered.stdout)
    return out
