"""Safe arithmetic in specs: `${64 * width}`, `${2 if imagenet else 1}`,
`${make_divisible(32 * width, 8)}`, `${widths[i]}`.

Parsed by Python's `ast` and evaluated by walking a whitelist of node types (never `eval`):
numbers, booleans, strings, names of parameters, + - * / // % and unary minus, comparisons,
`and`/`or`/`not`, `a if c else b`, indexing a list (`widths[i]`, negative counts from the
end), and the functions in FUNCTIONS. The work is bounded: every number met on the way, not
only the result, stays within MAX_EXPRESSION_VALUE, `round` takes at most MAX_ROUND_DIGITS
digits, and a name must be written in ASCII (Python folds a fullwidth `w` into `w`; a spec may not).
Every error is a NetbuilderError that names the expression. No torch here.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NetbuilderError, excerpt
from ..limits import MAX_EXPRESSION_VALUE, MAX_INTEGER, MAX_ROUND_DIGITS

MAX_EXPRESSION_CHARS = 200
WHOLE = re.compile(r"\$\{([^{}]*)\}")  # one ${...}; a value that is exactly one is typed
ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Value = int | float | bool | str | list[Any]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet's channel rounding: the nearest multiple of `divisor`, at least `min_value`
    (default: divisor), and never more than 10% below `value`."""
    if divisor < 1:
        raise ValueError(f"make_divisible needs a divisor >= 1, got {divisor}")
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def bounded_round(value: float, digits: int | None = None) -> float | int:
    """round(), with at most MAX_ROUND_DIGITS digits either side (round(1, -10**9) computes
    10**(10**9) first)."""
    if digits is not None and (not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS):
        raise ValueError(f"round takes at most {MAX_ROUND_DIGITS} digits, got {excerpt(digits)}")
    return round(value) if digits is None else round(value, digits)


def log(value: float, base: float = math.e) -> float:
    """The natural logarithm, or the one to `base` (RegNet's widths: log(w / w0, m))."""
    return math.log(value, base)


def length(value: Any) -> int:
    if not isinstance(value, list):
        raise ValueError(f"len takes a list, got {excerpt(value)}")
    return len(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "round": bounded_round,
    "abs": abs,
    "int": int,
    "float": float,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": math.sqrt,
    "log": log,
    "len": length,
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
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise NetbuilderError(f"cannot parse ${{{text}}}: {exc.msg}") from None
    try:
        value = _walk(tree.body, names, source)
    except NetbuilderError as error:
        raise NetbuilderError(f"in ${{{text}}}: {error.message}") from None
    except (ZeroDivisionError, ValueError, TypeError, OverflowError, IndexError) as exc:
        raise NetbuilderError(f"cannot evaluate ${{{text}}}: {exc}") from None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        raise NetbuilderError(f"${{{text}}} gives {excerpt(value)}, larger than {MAX_INTEGER:,}")
    return value  # type: ignore[no-any-return]  # the walk gives only the Value types


def _walk(node: ast.AST, names: Mapping[str, Value], source: str) -> Any:
    return _bounded(_value(node, names, source))


def _bounded(value: Any) -> Any:
    """Every number an expression meets stays finite and within MAX_EXPRESSION_VALUE: chained
    params squaring each other would otherwise build integers of millions of digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise NetbuilderError(f"a value is {value}")
    if abs(value) > MAX_EXPRESSION_VALUE:
        raise NetbuilderError(
            f"a value on the way is {excerpt(value)}, beyond {MAX_EXPRESSION_VALUE:.0e}"
        )
    return value


def _value(node: ast.AST, names: Mapping[str, Value], source: str) -> Any:
    walk = _walk
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return node.value
    if isinstance(node, ast.Name):
        written = ast.get_source_segment(source, node)
        if written is None or not ASCII_NAME.fullmatch(written):
            raise NetbuilderError(
                f"names are written in ASCII letters, digits and _; got {excerpt(written)}"
            )
        if node.id in names:
            return names[node.id]
        if node.id in ("True", "False"):
            return node.id == "True"
        raise NetbuilderError(f"unknown name '{node.id}'; known: {', '.join(sorted(names))}")
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left = _number(walk(node.left, names, source))
        right = _number(walk(node.right, names, source))
        return BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(walk(node.operand, names, source))
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not walk(node.operand, names, source)
    if isinstance(node, ast.BoolOp):  # short-circuits: `x != 0 and 10 / x > 1` is safe
        stop = not isinstance(node.op, ast.And)  # the value that decides: False for and
        for operand in node.values:
            if bool(walk(operand, names, source)) == stop:
                return stop
        return not stop
    if isinstance(node, ast.Compare):
        left = walk(node.left, names, source)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if type(op) not in COMPARE:
                raise NetbuilderError(f"'{type(op).__name__}' is not allowed")
            right = walk(right_node, names, source)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        chosen = node.body if walk(node.test, names, source) else node.orelse
        return walk(chosen, names, source)
    if isinstance(node, ast.Subscript):
        return _item(walk(node.value, names, source), walk(node.slice, names, source))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS:
            raise NetbuilderError(
                f"unknown function '{node.func.id}'; known: {', '.join(sorted(FUNCTIONS))}"
            )
        return FUNCTIONS[node.func.id](*(walk(arg, names, source) for arg in node.args))
    raise NetbuilderError(
        f"'{excerpt(ast.unparse(node))}' is not allowed (numbers, parameters, + - * / // %, "
        "comparisons, and/or/not, a if c else b, list[index], "
        f"{', '.join(sorted(FUNCTIONS))})"
    )


def _item(items: Any, index: Any) -> Any:
    if not isinstance(items, list):
        raise NetbuilderError(f"only a list can be indexed, got {excerpt(items)}")
    if isinstance(index, bool) or not isinstance(index, int):
        raise NetbuilderError(f"a list index is a whole number, got {excerpt(index)}")
    if not -len(items) <= index < len(items):
        raise NetbuilderError(f"index {index} is outside a list of {len(items)}")
    return items[index]


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
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return excerpt(value) if isinstance(value, list) else str(value)
