"""Query parameters of public endpoints: declared once, parsed in microseconds.

Only an endpoint's own parameters enter its cache key, parsed and normalised (so `?page=01` and
`?page=1` share one entry); anything else in the query string (utm_*, cache busters) is ignored.
A bad value raises ParamError, which views turn into a 400 with the message. Plain Python on
purpose: this runs on every public request, hits included, where a DRF serializer costs ~100x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WHOLE_NUMBER = re.compile(r"\+?[0-9]{1,9}")


class ParamError(ValueError):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True, slots=True)
class IntParam:
    name: str
    minimum: int
    maximum: int
    default: int | None = None

    def parse(self, raw: str | None):
        if raw is None:
            if self.default is None:
                raise ParamError(self.name, "this parameter is required")
            return self.default
        raw = raw.strip()
        if not _WHOLE_NUMBER.fullmatch(raw):
            raise ParamError(self.name, "a whole number is required")
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise ParamError(self.name, f"must be between {self.minimum} and {self.maximum}")
        return value


@dataclass(frozen=True, slots=True)
class StrParam:
    name: str
    min_length: int
    max_length: int
    required: bool = True

    def parse(self, raw: str | None):
        value = " ".join((raw or "").split())  # trimmed, inner whitespace folded
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ParamError(self.name, "control characters are not allowed")
        if not value:
            if self.required:
                raise ParamError(self.name, "this parameter is required")
            return ""
        if not self.min_length <= len(value) <= self.max_length:
            raise ParamError(self.name, f"length must be between {self.min_length} and {self.max_length}")
        return value


def parse_params(spec: tuple, query) -> dict:
    """{name: value} for the parameters in `spec` read from a QueryDict; raises ParamError."""
    return {param.name: param.parse(query.get(param.name)) for param in spec}
