"""The one error type users see, plus a bundle so every problem in a spec is reported at once.

Messages are bounded: a value is quoted as a short excerpt (`excerpt`), never whole, so no
message can print a file netbuilder was pointed at; one message and the list of errors shown
at once have a length limit (`limits`).
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from dataclasses import dataclass

from .limits import MAX_ERRORS_SHOWN, MAX_EXCERPT_CHARS, MAX_MESSAGE_CHARS

_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring = _EXCERPT.maxother = MAX_EXCERPT_CHARS
_EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxdict = _EXCERPT.maxset = 4
_EXCERPT.maxlevel = 2


def excerpt(value: object) -> str:
    """The value as a message quotes it: its repr, cut short (a long string, a big list, a
    whole file read as YAML, an integer of thousands of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    text = _EXCERPT.repr(value)
    return text if len(text) <= MAX_EXCERPT_CHARS else text[: MAX_EXCERPT_CHARS - 3] + "..."


@dataclass(frozen=True)
class Location:
    """Where in a spec file a problem is; any part may be unknown."""

    file: str | None = None
    line: int | None = None  # 1-based, like compilers and editors
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)


class NetbuilderError(Exception):
    """A user error: bad spec, missing file, impossible shape. Printed as one line, exit code 2."""

    def __init__(self, message: str, location: Location | None = None, where: str | None = None):
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(message)
        self.message = message
        self.location = location or Location()
        if where is not None and len(where) > MAX_MESSAGE_CHARS:
            where = "..." + where[3 - MAX_MESSAGE_CHARS :]
        self.where = where  # place inside the spec, e.g. "layers[3] (fire4).squeeze"

    def with_context(
        self, location: Location | None = None, where: str | None = None
    ) -> NetbuilderError:
        """A copy that keeps what it knew and fills in what the caller knows better."""
        merged = Location(
            file=self.location.file or (location.file if location else None),
            line=self.location.line or (location.line if location else None),
            column=self.location.column or (location.column if location else None),
        )
        return type(self)(self.message, merged, self.where or where)

    def __str__(self) -> str:
        prefix = f"{self.location}: " if str(self.location) else ""
        where = f"{self.where}: " if self.where else ""
        return f"{prefix}error: {where}{self.message}"


@dataclass(frozen=True)
class Note:
    """A located remark that is not an error (a spec written for an earlier release, say): the
    command goes on, and the CLI shows it on stderr, compiler-style."""

    message: str
    location: Location = Location()

    def __str__(self) -> str:
        prefix = f"{self.location}: " if str(self.location) else ""
        return f"{prefix}note: {self.message}"


class SpecErrors(NetbuilderError):
    """Several problems found in one pass; shown one per line like a compiler does."""

    def __init__(self, errors: Iterable[NetbuilderError]):
        self.errors = list(errors)
        count = len(self.errors)
        summary = f"{count:,} error{'s' if count != 1 else ''}; nothing was built."
        super().__init__(summary)

    def __str__(self) -> str:
        shown = [str(e) for e in self.errors[:MAX_ERRORS_SHOWN]]
        hidden = len(self.errors) - len(shown)
        more = [f"... and {hidden:,} more"] if hidden > 0 else []
        return "\n".join([*shown, *more, self.message])


def raise_if_any(errors: list[NetbuilderError]) -> None:
    """Raise the lone error as itself, several as a bundle, none as nothing."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)
