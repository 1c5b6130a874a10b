"""The expression language of experiment profiles, parsed with lark (domain facts §7.1).

Expressions appear as option values written wholly as ``${{ … }}``, as
``if``/``while``/``wait_until``/``condition`` (bare or wrapped in ``${{ … }}``)
and embedded in log messages (several ``${{ … }}`` in one string).

Language:

* numbers (``1``, ``0.5``, ``1e-3``), ``true``/``false`` (any case);
* bare names: the profile input of that name, else the name itself as a string
  (strings are never quoted);
* arithmetic ``+ - * / **`` (``**`` binds tighter than unary minus, as in Python),
  comparisons ``== != > >= < <=``, ``and``/``or``/``not``, parentheses;
* functions ``random()`` (uniform in [0, 1)), ``unit()``, ``experiment()``,
  ``job_name()``, ``hours_elapsed()`` (hours since the profile started);
* live values ``unit:job:setting`` or ``unit:job:setting.key.subkey`` read the
  retained MQTT value of that setting (JSON payloads are indexed by the keys),
  e.g. ``worker1:od_reading:od1.od > 0.5``; ``::job:setting`` (or ``:job:setting``)
  means the unit the action runs on.

:func:`parse` turns text into a lark tree (cached); :func:`evaluate` computes it
against a :class:`Context`. Syntax errors raise :class:`ExpressionSyntaxError`
(with the column), evaluation problems :class:`ExpressionError`.
"""

from __future__ import annotations

import json
import random as _random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

OPEN, CLOSE = "${{", "}}"

GRAMMAR = r"""
?start: expr

?expr: expr _OR and_expr          -> or_
     | and_expr
?and_expr: and_expr _AND not_expr  -> and_
     | not_expr
?not_expr: _NOT not_expr           -> not_
     | comparison
?comparison: sum COMP_OP sum       -> compare
     | sum
?sum: sum ADD_OP product           -> binop
     | product
?product: product MUL_OP unary     -> binop
     | unary
?unary: "-" unary                  -> neg
     | "+" unary                   -> pos
     | power
?power: atom "**" unary            -> pow
     | atom
?atom: NUMBER                      -> number
     | TRUE                        -> true
     | FALSE                       -> false
     | NAME "(" ")"                -> call
     | MQTT_REF                    -> live
     | NAME                        -> name
     | "(" expr ")"

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
MQTT_REF.3: /(::|[A-Za-z0-9_$-]*:)[A-Za-z0-9_$-]+:[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*/
COMP_OP: "==" | "!=" | ">=" | "<=" | ">" | "<"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/"
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.NUMBER
%import common.WS
%ignore WS
"""

FUNCTIONS = ("random", "unit", "experiment", "job_name", "hours_elapsed")


class ExpressionSyntaxError(ValueError):
    """The text is not an expression.

    Attributes:
        column: 1-based column of the problem within the expression text (or None).
        expected: Some tokens that would have been accepted there.
    """

    def __init__(self, message: str, column: int | None = None, expected: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.column = column
        self.expected = expected


class ExpressionError(ValueError):
    """An expression could not be evaluated (unknown function, missing live value, bad operand types)."""


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


_TOKEN_NAMES = {
    "COMP_OP": "a comparison", "ADD_OP": "+ or -", "MUL_OP": "* or /", "NUMBER": "a number", "NAME": "a name",
    "MQTT_REF": "unit:job:setting", "LPAR": "(", "RPAR": ")", "_OR": "or", "_AND": "and", "_NOT": "not",
    "TRUE": "true", "FALSE": "false", "MINUS": "-", "PLUS": "+", "__ANON_0": "**", "$END": "end of expression",
}


@lru_cache(maxsize=1024)
def parse(text: str) -> Tree | Token:
    """Parse an expression (without ``${{ }}``) into a lark tree.

    Raises:
        ExpressionSyntaxError: not a valid expression (message names the column and what was expected).
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionSyntaxError("The expression is empty.", column=1)
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        column = getattr(exc, "column", None)
        if isinstance(column, int) and column < 0:
            column = None
        expected = tuple(sorted({_TOKEN_NAMES.get(t, t) for t in (getattr(exc, "expected", None) or ())}))[:8]
        if isinstance(exc, UnexpectedCharacters):
            what = f"unexpected character {text[exc.pos_in_stream]!r}" if exc.pos_in_stream < len(text) else "unexpected end"
        elif isinstance(exc, UnexpectedEOF):
            what = "the expression ends too early"
        elif isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
            what = "the expression ends too early"
        elif isinstance(exc, UnexpectedToken):
            what = f"unexpected {exc.token.value!r}"
        else:  # pragma: no cover - lark has no other kinds today
            what = "invalid expression"
        where = f" at column {column}" if column else ""
        raise ExpressionSyntaxError(f"{what}{where} in {text!r}", column=column, expected=expected) from None


def strip_wrapper(text: str) -> str | None:
    """The inside of ``${{ … }}`` when ``text`` is wholly wrapped, else None."""
    stripped = text.strip()
    if stripped.startswith(OPEN) and stripped.endswith(CLOSE) and stripped.count(OPEN) == 1:
        return stripped[len(OPEN):-len(CLOSE)]
    return None


def is_wrapped(value: Any) -> bool:
    """True for a string written wholly as ``${{ … }}``."""
    return isinstance(value, str) and strip_wrapper(value) is not None


def template_parts(text: str) -> list[tuple[bool, str]]:
    """Split a log message into ``(is_expression, text)`` parts at each ``${{ … }}``.

    Raises:
        ExpressionSyntaxError: a ``${{`` without its closing ``}}``.
    """
    parts: list[tuple[bool, str]] = []
    position = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            if position < len(text):
                parts.append((False, text[position:]))
            return parts
        end = text.find(CLOSE, start + len(OPEN))
        if end < 0:
            raise ExpressionSyntaxError(f"'${{{{' at column {start + 1} has no closing '}}}}'", column=start + 1)
        if start > position:
            parts.append((False, text[position:start]))
        parts.append((True, text[start + len(OPEN):end]))
        position = end + len(CLOSE)


def check(text: Any, *, bare_allowed: bool) -> None:
    """Check the syntax of a condition (``bare_allowed``) or of an option/log value.

    Raises:
        ExpressionSyntaxError: the first problem found.
    """
    if isinstance(text, bool) or text is None or isinstance(text, (int, float)):
        return
    if not isinstance(text, str):
        raise ExpressionSyntaxError(f"expected an expression, got {type(text).__name__}")
    inner = strip_wrapper(text)
    if inner is not None:
        parse(inner)
    elif bare_allowed:
        parse(text)
    else:
        for is_expression, part in template_parts(text):
            if is_expression:
                parse(part)


@dataclass
class Context:
    """What an expression can see.

    Attributes:
        inputs: The profile's ``inputs`` (bare names resolve to these first).
        unit: The unit the action runs on (``unit()``; ``::job:setting``), or None.
        experiment: The profile's experiment (``experiment()``; live-value topics).
        job_name: The job of the action (``job_name()``), or None.
        hours_elapsed: Callable returning hours since the profile started.
        read_setting: ``(unit, job, setting) -> payload str | None``: the retained
            MQTT value, or None when there is none. May raise ``ExpressionError``
            (e.g. the unit is inactive).
        rng: Random source for ``random()``.
    """

    inputs: dict[str, Any] = field(default_factory=dict)
    unit: str | None = None
    experiment: str | None = None
    job_name: str | None = None
    hours_elapsed: Callable[[], float] = lambda: 0.0
    read_setting: Callable[[str, str, str], str | None] | None = None
    rng: _random.Random = field(default_factory=_random.Random)


def decode_payload(payload: str) -> Any:
    """A setting's wire form as a value: JSON, ``True``/``False``, numbers, else the string."""
    text = payload.strip()
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except ValueError:
        return payload


def _number(value: Any, op: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"{op} needs numbers, got {value!r}")
    return value


_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


def _to_number_if_numeric(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def evaluate(node: Tree | Token | str, ctx: Context) -> Any:
    """Evaluate a parsed expression (or expression text) in ``ctx``.

    Raises:
        ExpressionSyntaxError: ``node`` is text that does not parse.
        ExpressionError: evaluation failed (message says why).
    """
    if isinstance(node, str) and not isinstance(node, Token):
        node = parse(node)
    if isinstance(node, Token):  # a lone token can only be the whole expression of a single-token rule
        raise ExpressionError(f"unexpected token {node!r}")  # pragma: no cover
    kind = node.data
    kids = node.children
    if kind == "number":
        text = str(kids[0])
        value = float(text)
        return int(value) if value.is_integer() and not any(c in text for c in ".eE") else value
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind == "name":
        name = str(kids[0])
        return ctx.inputs.get(name, name)
    if kind == "call":
        return _call(str(kids[0]), ctx)
    if kind == "live":
        return _live(str(kids[0]), ctx)
    if kind == "neg":
        return -_number(evaluate(kids[0], ctx), "-")
    if kind == "pos":
        return _number(evaluate(kids[0], ctx), "+")
    if kind == "not_":
        return not bool(evaluate(kids[0], ctx))
    if kind == "and_":
        return bool(evaluate(kids[0], ctx)) and bool(evaluate(kids[1], ctx))
    if kind == "or_":
        return bool(evaluate(kids[0], ctx)) or bool(evaluate(kids[1], ctx))
    if kind == "pow":
        base, exponent = _number(evaluate(kids[0], ctx), "**"), _number(evaluate(kids[1], ctx), "**")
        try:
            return base ** exponent
        except (OverflowError, ZeroDivisionError) as exc:
            raise ExpressionError(f"{base} ** {exponent}: {exc}") from None
    if kind == "binop":
        left, op, right = evaluate(kids[0], ctx), str(kids[1]), evaluate(kids[2], ctx)
        a, b = _number(left, op), _number(right, op)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            raise ExpressionError(f"division by zero in {a} / {b}")
        return a / b
    if kind == "compare":
        left, op, right = evaluate(kids[0], ctx), str(kids[1]), evaluate(kids[2], ctx)
        if isinstance(left, str) != isinstance(right, str):  # "0.5" from a bare payload vs a number
            left, right = _to_number_if_numeric(left), _to_number_if_numeric(right)
        try:
            return _COMPARE[op](left, right)
        except TypeError:
            raise ExpressionError(f"cannot compare {left!r} {op} {right!r}") from None
    raise ExpressionError(f"unknown expression node {kind!r}")  # pragma: no cover


def _call(name: str, ctx: Context) -> Any:
    if name == "random":
        return ctx.rng.random()
    if name == "hours_elapsed":
        return ctx.hours_elapsed()
    if name == "unit":
        if ctx.unit is None:
            raise ExpressionError("unit() is only defined in actions of a unit")
        return ctx.unit
    if name == "experiment":
        if ctx.experiment is None:
            raise ExpressionError("experiment() is not defined here")
        return ctx.experiment
    if name == "job_name":
        if ctx.job_name is None:
            raise ExpressionError("job_name() is only defined in actions of a job")
        return ctx.job_name
    raise ExpressionError(f"unknown function {name}(); use one of: {', '.join(f + '()' for f in FUNCTIONS)}")


def split_live(reference: str) -> tuple[str, str, str, list[str]]:
    """``"unit:job:setting.a.b"`` → ``(unit, job, setting, ["a", "b"])``; ``::job:setting`` gives unit ``""``."""
    if reference.startswith("::"):
        reference = reference[1:]
    unit, job, rest = reference.split(":", 2)
    setting, *keys = rest.split(".")
    return unit, job, setting, keys


def _live(reference: str, ctx: Context) -> Any:
    unit, job, setting, keys = split_live(reference)
    if not unit:
        if ctx.unit is None:
            raise ExpressionError(f"{reference!r} needs a unit: write unit:{job}:{setting} outside unit actions")
        unit = ctx.unit
    if ctx.read_setting is None:
        raise ExpressionError(f"live values such as {reference!r} are not available here")
    payload = ctx.read_setting(unit, job, setting)
    if payload is None or payload == "":
        raise ExpressionError(f"no value published for {unit}:{job}:{setting} (is {job} running on {unit}?)")
    value = decode_payload(payload)
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ExpressionError(f"{unit}:{job}:{setting} has no key {key!r} (value {value!r})")
        value = value[key]
    return value


def render_value(value: Any, ctx: Context) -> Any:
    """An option value: ``${{ … }}`` strings evaluated, anything else as is."""
    inner = strip_wrapper(value) if isinstance(value, str) else None
    return evaluate(parse(inner), ctx) if inner is not None else value


def evaluate_condition(value: Any, ctx: Context) -> bool:
    """An ``if``/``while``/``wait_until`` value (bool, number, bare or wrapped expression) as a bool."""
    if isinstance(value, bool):
        return value
    if value is None:
        return True
    if isinstance(value, (int, float)):
        return bool(value)
    inner = strip_wrapper(value)
    return bool(evaluate(parse(inner if inner is not None else value), ctx))


def render_message(text: str, ctx: Context) -> str:
    """A log message with each ``${{ … }}`` replaced by its value."""
    out = []
    for is_expression, part in template_parts(text):
        if is_expression:
            value = evaluate(parse(part), ctx)
            out.append(_format(value))
        else:
            out.append(part)
    return "".join(out)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
