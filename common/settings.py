"""Settings read once from the environment, validated, and frozen.

Each function builds its own frozen settings object from an injectable mapping
(``environ=os.environ`` by default) so tests pass a dict. A missing or malformed
value raises :class:`SettingsError` whose message names the variable; the entry
points turn that into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeVar

DEFAULT_VOTE_OPTIONS = "cats:Cats,dogs:Dogs"
_OPTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class VoteOption:
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Options:
    """The poll's options, in display order."""

    items: tuple[VoteOption, ...]
    id_set: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_set", frozenset(option.id for option in self.items))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(option.id for option in self.items)

    def __contains__(self, option_id: object) -> bool:
        return option_id in self.id_set

    def label(self, option_id: str) -> str:
        for option in self.items:
            if option.id == option_id:
                return option.label
        raise KeyError(option_id)


def parse_options(raw: str) -> Options:
    """Parse ``id:Label`` pairs, comma separated, 2 to 10 of them, ids unique."""
    items: list[VoteOption] = []
    for pair in raw.split(","):
        option_id, sep, label = pair.strip().partition(":")
        label = label.strip()
        if not sep or not label:
            raise ValueError(f"expected id:Label pairs, got {pair.strip()!r}")
        if not _OPTION_ID.fullmatch(option_id):
            raise ValueError(f"option id {option_id!r} must be 1-32 of a-z 0-9 _ - (lower case)")
        if len(label) > 64:
            raise ValueError(f"label of {option_id!r} is longer than 64 characters")
        if option_id in (item.id for item in items):
            raise ValueError(f"option id {option_id!r} appears twice")
        items.append(VoteOption(option_id, label))
    if not 2 <= len(items) <= 10:
        raise ValueError(f"expected 2 to 10 options, got {len(items)}")
    return Options(tuple(items))


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

    def options(self) -> Options:
        return self.parsed("VOTE_OPTIONS", parse_options, DEFAULT_VOTE_OPTIONS)


def exit_on_error(build: Callable[[], T]) -> T:
    """Build settings, or exit with one line that names the bad variable."""
    try:
        return build()
    except SettingsError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"configuration error: {message}\n")
    raise SystemExit(2)
