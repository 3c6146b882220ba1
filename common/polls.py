"""A poll: a question, its options (2 to 10, in display order), and when its figures show.

The first poll comes from the settings (POLL_QUESTION, VOTE_OPTIONS) and has the id
``first``; a presenter's polls get random ids and never change once created. Every
function reads the same validation: a poll from the settings, from the admin API or from a
queue entry is accepted only as this module says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

FIRST = "first"  # the poll the settings define
DEFAULT_QUESTION = "Cats or dogs?"
DEFAULT_OPTIONS = "cats:Cats,dogs:Dogs"
RESULTS_MODES = ("live", "after_close")  # figures while open, or only once closed
MAX_QUESTION_CHARS = 200
MAX_LABEL_CHARS = 64
_OPTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_POLL_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class VoteOption(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Options:
    """A poll's options, in display order."""

    items: tuple[VoteOption, ...]
    id_set: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_set", frozenset(option.id for option in self.items))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(option.id for option in self.items)

    def __contains__(self, option_id: object) -> bool:
        return option_id in self.id_set

    def as_list(self) -> list[dict[str, str]]:
        return [{"id": option.id, "label": option.label} for option in self.items]


class Poll(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    id: str
    question: str
    options: Options
    results: str = "live"

    @property
    def hides_figures_while_open(self) -> bool:
        return self.results == "after_close"

    def as_dict(self) -> dict[str, Any]:
        return {"poll": self.id, "question": self.question, "options": self.options.as_list(),
                "results": self.results}


def is_poll_id(value: object) -> bool:
    return type(value) is str and _POLL_ID.fullmatch(value) is not None


def checked_options(pairs: list[tuple[object, object]]) -> Options:
    """Options from (id, label) pairs; ValueError says what is wrong."""
    items: list[VoteOption] = []
    for option_id, label in pairs:
        if type(option_id) is not str or not _OPTION_ID.fullmatch(option_id):
            raise ValueError(f"option id {option_id!r} must be 1-32 of a-z 0-9 _ - (lower case)")
        if type(label) is not str or not label.strip():
            raise ValueError(f"option {option_id!r} needs a label")
        if len(label.strip()) > MAX_LABEL_CHARS:
            raise ValueError(f"the label of {option_id!r} is longer than {MAX_LABEL_CHARS} "
                             "characters")
        if option_id in (item.id for item in items):
            raise ValueError(f"option id {option_id!r} appears twice")
        items.append(VoteOption(option_id, label.strip()))
    if not 2 <= len(items) <= 10:
        raise ValueError(f"expected 2 to 10 options, got {len(items)}")
    return Options(tuple(items))


def parse_options(raw: str) -> Options:
    """VOTE_OPTIONS: ``id:Label`` pairs, comma separated, or a JSON list of
    ``{"id", "label"}`` (so a label may hold a comma)."""
    if raw.lstrip().startswith("["):
        try:
            document = json.loads(raw)
        except ValueError:
            raise ValueError("not valid JSON: expected a list of {\"id\", \"label\"}") from None
        return options_from_json(document)
    pairs: list[tuple[object, object]] = []
    for pair in raw.split(","):
        option_id, sep, label = pair.strip().partition(":")
        if not sep or not label.strip():
            raise ValueError(f"expected id:Label pairs, got {pair.strip()!r}")
        pairs.append((option_id, label))
    return checked_options(pairs)


def options_from_json(document: object) -> Options:
    if type(document) is not list or not all(type(item) is dict for item in document):
        raise ValueError('expected a list of {"id", "label"}')
    return checked_options([(item.get("id"), item.get("label")) for item in document])


def checked_question(question: object) -> str:
    if type(question) is not str or not question.strip():
        raise ValueError("the question is empty")
    if len(question.strip()) > MAX_QUESTION_CHARS:
        raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    return question.strip()


def checked_results(results: object) -> str:
    if results not in RESULTS_MODES:
        raise ValueError(f"results must be {' or '.join(RESULTS_MODES)}")
    return str(results)


def poll_from_dict(poll_id: str, document: dict[str, Any]) -> Poll:
    """A poll from its JSON form (the admin API's, a queue entry's, a stored one's)."""
    if not is_poll_id(poll_id):
        raise ValueError("the poll id must be 1-32 of a-z 0-9 - (lower case)")
    return Poll(poll_id, checked_question(document.get("question")),
                options_from_json(document.get("options")),
                checked_results(document.get("results", "live")))
