"""Settings read once from the environment, validated, and frozen.

Each function builds its own frozen settings object from an injectable mapping
(``environ=os.environ`` by default) so tests pass a dict. A missing or malformed
value raises :class:`SettingsError` whose message names the variable; the entry
points turn that into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn, TypeVar

from common.polls import (
    DEFAULT_OPTIONS,
    DEFAULT_QUESTION,
    FIRST,
    Poll,
    checked_question,
    parse_options,
)

T = TypeVar("T")
MIN_TOKEN_CHARS = 24


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Typed reads from an environment mapping; every error names the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise SettingsError(f"{name} is not set")
        return default

    def optional(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    def parsed(self, name: str, parse: Callable[[str], T], default: str | None = None) -> T:
        value = self.raw(name, default)
        try:
            return parse(value)
        except ValueError as error:
            raise SettingsError(f"{name}={value!r} is invalid: {error}") from None

    def number(
        self, name: str, default: float, *, low: float, high: float
    ) -> float:
        value = self.parsed(name, float, str(default))
        if not low <= value <= high:
            raise SettingsError(f"{name}={value:g} is out of range: expected {low:g} to {high:g}")
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.parsed(name, int, str(default))
        if not low <= value <= high:
            raise SettingsError(f"{name}={value} is out of range: expected {low} to {high}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, "true" if default else "false").lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={value!r} is invalid: expected true or false")

    def url(self, name: str, schemes: tuple[str, ...]) -> str:
        value = self.raw(name)
        scheme = value.partition("://")[0]
        if scheme not in schemes or "://" not in value:
            expected = " or ".join(f"{s}://" for s in schemes)
            raise SettingsError(f"{name} is invalid: expected a URL starting with {expected}")
        return value

    def first_poll(self) -> Poll:
        """The poll the settings define: POLL_QUESTION and VOTE_OPTIONS."""
        return Poll(FIRST, self.parsed("POLL_QUESTION", checked_question, DEFAULT_QUESTION),
                    self.parsed("VOTE_OPTIONS", parse_options, DEFAULT_OPTIONS))


def admin_token(env: Env, name: str) -> str | None:
    """A bearer token that turns an admin API on (unset: off); 24+ characters."""
    value = env.optional(name)
    if value is not None and len(value) < MIN_TOKEN_CHARS:
        raise SettingsError(f"{name} is too short: use at least {MIN_TOKEN_CHARS} random "
                            "characters")
    return value


def exit_on_error(build: Callable[[], T]) -> T:
    """Build settings, or exit with one line that names the bad variable."""
    try:
        return build()
    except SettingsError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"configuration error: {message}\n")
    raise SystemExit(2)
