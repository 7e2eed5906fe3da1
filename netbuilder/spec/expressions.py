"""Safe arithmetic in specs: `${64 * width}`, `${2 if imagenet else 1}`,
`${make_divisible(32 * width, 8)}`.

Parsed by Python's `ast` and evaluated by walking a whitelist of node types (never `eval`):
numbers, booleans, strings, names of parameters, + - * / // % and unary minus, comparisons,
`and`/`or`/`not`, `a if c else b`, and the functions in FUNCTIONS. Every error is a
NetbuilderError that names the expression. No torch here.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NetbuilderError, excerpt
from ..limits import MAX_INTEGER

MAX_EXPRESSION_CHARS = 200
WHOLE = re.compile(r"\$\{([^{}]*)\}")  # one ${...}; a value that is exactly one is typed
Value = int | float | bool | str


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet's channel rounding: the nearest multiple of `divisor`, at least `min_value`
    (default: divisor), and never more than 10% below `value`."""
    if divisor < 1:
        raise ValueError(f"make_divisible needs a divisor >= 1, got {divisor}")
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "round": round,
    "abs": abs,
    "int": int,
    "float": float,
    "make_divisible": make_divisible,
}
BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate(text: str, names: Mapping[str, Value]) -> Value:
    """The value of one expression (the text inside ${...}) given the names it may use."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise NetbuilderError(
            f"expression ${{{text[:40]}...}} is longer than {MAX_EXPRESSION_CHARS} characters"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise NetbuilderError(f"cannot parse ${{{text}}}: {exc.msg}") from None
    try:
        value = _walk(tree.body, names)
    except NetbuilderError as error:
        raise NetbuilderError(f"in ${{{text}}}: {error.message}") from None
    except (ZeroDivisionError, ValueError, TypeError, OverflowError) as exc:
        raise NetbuilderError(f"cannot evaluate ${{{text}}}: {exc}") from None
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        raise NetbuilderError(f"${{{text}}} gives {value}, larger than {MAX_INTEGER:,}")
    if isinstance(value, float) and not math.isfinite(value):
        raise NetbuilderError(f"${{{text}}} gives {value}")
    return value  # type: ignore[no-any-return]  # the walk gives only numbers, bools, strings


def _walk(node: ast.AST, names: Mapping[str, Value]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in ("True", "False"):
            return node.id == "True"
        raise NetbuilderError(f"unknown name '{node.id}'; known: {', '.join(sorted(names))}")
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _number(_walk(node.left, names)), _number(_walk(node.right, names))
        return BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(_walk(node.operand, names))
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _walk(node.operand, names)
    if isinstance(node, ast.BoolOp):  # short-circuits: `x != 0 and 10 / x > 1` is safe
        stop = not isinstance(node.op, ast.And)  # the value that decides: False for and
        for operand in node.values:
            if bool(_walk(operand, names)) == stop:
                return stop
        return not stop
    if isinstance(node, ast.Compare):
        left = _walk(node.left, names)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if type(op) not in COMPARE:
                raise NetbuilderError(f"'{type(op).__name__}' is not allowed")
            right = _walk(right_node, names)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _walk(node.body if _walk(node.test, names) else node.orelse, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS:
            raise NetbuilderError(
                f"unknown function '{node.func.id}'; known: {', '.join(sorted(FUNCTIONS))}"
            )
        return FUNCTIONS[node.func.id](*(_walk(arg, names) for arg in node.args))
    raise NetbuilderError(
        f"'{ast.unparse(node)}' is not allowed (numbers, parameters, "
        "+ - * / // %, comparisons, and/or/not, a if c else b, "
        f"{', '.join(sorted(FUNCTIONS))})"
    )


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NetbuilderError(f"arithmetic needs numbers, got {excerpt(value)}")
    return value


def substitute(value: Any, names: Mapping[str, Value]) -> Any:
    """A YAML value with every ${...} replaced: a string that is exactly one expression takes
    the expression's type; expressions inside longer strings are formatted into them."""
    if isinstance(value, dict):
        return {key: substitute(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, names) for item in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = WHOLE.fullmatch(value.strip())
    if whole:
        return evaluate(whole.group(1), names)
    return WHOLE.sub(lambda match: _text(evaluate(match.group(1), names)), value)


def _text(value: Value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
