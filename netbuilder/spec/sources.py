"""`from:`, the layers a layer reads: one rule for the spec's top level, a `sequence` and a
macro's body, each a *scope* with an input of its own.

    from: conv2          # a layer of the scope (or, in a sequence or macro, one before it)
    from: input          # the scope's input: the model's, or what the sequence/macro reads
    from: -2             # two layers up within the scope; -k from its k-th layer is its input
    from: [a, -1]        # several, for a merge block

A relative index never reaches out of its scope: past the scope's input it is an error, at the
top level as inside a macro. A layer reads only earlier layers, so graphs have no cycles. No
torch here.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ..errors import NetbuilderError

INPUT = "input"  # the scope's input, as `from:` names it
SCOPE_INPUT = -1  # what `scope_position` returns for the scope's input


def scope_position(
    source: str | int,
    position: int,
    scope: Sequence[str | None],
    input_name: str = "the model's input",
    top_level: bool = True,
) -> int | str:
    """Where `source`, written in `from:` of the layer at `position` of `scope` (the names of
    the scope's layers, in order), points: an index into `scope`, SCOPE_INPUT, or the name
    itself when no layer of the scope has it (an earlier layer outside the scope, or a
    mistake the caller reports with `unknown_layer`)."""

    def place(index: int) -> str:
        return f"layers[{index}]" if top_level else f"layer {index + 1} of its group"

    if isinstance(source, int) and not isinstance(source, bool):
        target = position + source
        if source >= 0:
            raise NetbuilderError(
                f"a relative index counts back from this layer: -1 is the layer above, got {source}"
            )
        if target < SCOPE_INPUT:
            raise NetbuilderError(
                f"{source} reaches before the input (this is "
                f"{place(position)}: -{position + 1} reads {input_name})"
            )
        return target
    if source == INPUT:
        return SCOPE_INPUT
    if position < len(scope) and source == scope[position]:
        raise NetbuilderError(
            f"a layer cannot read its own output ('{source}'): that would be a cycle"
        )
    if source in scope:
        index = scope.index(source)
        if index > position:
            raise NetbuilderError(
                f"'{source}' comes later ({place(index)}); a layer reads only "
                "earlier layers, which keeps the graph free of cycles"
            )
        return index
    return source


def unknown_layer(source: object, known: Sequence[str]) -> NetbuilderError:
    """The error for a `from:` name that no readable layer has, with a did-you-mean."""
    close = difflib.get_close_matches(str(source), [*known, INPUT], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return NetbuilderError(f"unknown layer '{source}'{hint}")
