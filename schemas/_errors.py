"""Turn pydantic's validation errors into :class:`ledger.errors.ValidationError`.

Each problem becomes ``"<field path>: <what was expected>"``.  The text is built from the error's type and
constraints only: pydantic's own message is used solely for the ledger's custom errors (whose text we
write), and the rejected input is never looked at, so personal data cannot leak into a message or a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from ledger.errors import ValidationError
from schemas._json import render_path
from schemas.types import PATTERN_DESCRIPTIONS

__all__ = ["MAX_REPORTED_PROBLEMS", "PROBLEM_SEPARATOR", "Problem", "ledger_error", "problems_of"]

Problem = tuple[str, str]
"""``(field path, what was expected)``."""

MAX_REPORTED_PROBLEMS = 5
PROBLEM_SEPARATOR = " | "
"""Joins problems in one message (``;`` already occurs inside single messages)."""


def _literal(ctx: dict[str, Any]) -> str:
    choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    return "must be one of " + ", ".join(choices) if choices else "is not one of the allowed values"


def _too_short(ctx: dict[str, Any]) -> str:
    return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters"


def _pattern(ctx: dict[str, Any]) -> str:
    pattern = str(ctx.get("pattern", ""))
    return PATTERN_DESCRIPTIONS.get(pattern, f"must match the pattern {pattern}")


def _exception_text(ctx: dict[str, Any]) -> str:
    # Only our own validators raise ValueError/AssertionError, with texts that never include the input.
    return str(ctx.get("error", "is invalid"))


_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "unknown field",
    "invalid_key": lambda _: "object keys must be strings",
    "string_type": lambda _: "must be a string",
    "string_unicode": lambda _: "must be valid Unicode (no lone surrogates)",
    "int_type": lambda _: "must be an integer",
    "bool_type": lambda _: "must be true or false",
    "dict_type": lambda _: "must be a JSON object",
    "model_type": lambda _: "must be a JSON object",
    "model_attributes_type": lambda _: "must be a JSON object",
    "list_type": lambda _: "must be a JSON array",
    "none_required": lambda _: "must be null",
    "datetime_type": lambda _: "must be an RFC 3339 timestamp string",
    "string_too_short": _too_short,
    "string_too_long": lambda c: f"must be at most {c.get('max_length')} characters",
    "too_short": lambda c: f"must have at least {c.get('min_length')} items",
    "too_long": lambda c: f"must have at most {c.get('max_length')} items",
    "greater_than_equal": lambda c: f"must be >= {c.get('ge')}",
    "greater_than": lambda c: f"must be > {c.get('gt')}",
    "less_than_equal": lambda c: f"must be <= {c.get('le')}",
    "less_than": lambda c: f"must be < {c.get('lt')}",
    "literal_error": _literal,
    "string_pattern_mismatch": _pattern,
    "value_error": _exception_text,
    "assertion_error": _exception_text,
}


def problems_of(exc: PydanticValidationError, prefix: Sequence[str | int] = ()) -> list[Problem]:
    """Every problem of a pydantic validation error, with paths rendered under ``prefix``."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        problems.extend(_describe(error, prefix))
    return problems


def _describe(error: ErrorDetails, prefix: Sequence[str | int]) -> list[Problem]:
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    kind = error["type"]
    path = [*prefix, *error["loc"], *ctx.get("subpath", ())]
    if kind.startswith("ledger_"):
        nested = ctx.get("problems")
        if nested:  # already-rendered problems of a nested model (the typed payload)
            return [(str(field), str(message)) for field, message in nested]
        return [(render_path(path), error["msg"])]
    describe = _DESCRIBE.get(kind)
    message = describe(ctx) if describe is not None else f"is invalid ({kind})"
    return [(render_path(path), message)]


def ledger_error(problems: Sequence[Problem]) -> ValidationError:
    """One :class:`ValidationError` for ``problems``: ``field`` is the first path, the message lists a few."""
    shown = [f"{field}: {message}" if field else message for field, message in problems[:MAX_REPORTED_PROBLEMS]]
    hidden = len(problems) - len(shown)
    if hidden > 0:
        shown.append(f"and {hidden} more problem{'s' if hidden > 1 else ''}")
    first_field = problems[0][0] if problems else ""
    return ValidationError(PROBLEM_SEPARATOR.join(shown) or "event: invalid", field=first_field or None)
