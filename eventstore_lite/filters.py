"""Server-side ``$all`` filters: on event type or stream name, by regex or prefixes.

Regexes use search semantics like the server's .NET ``Regex.IsMatch`` (its named groups
``(?<name>...)`` included).  An uncompilable regex fails the RPC the way the real server
does (an unhandled exception in the handler).

A filter comes from any client, so it must not be able to freeze the store.  Python's
``re`` has no time limit and holds the interpreter while it backtracks: ``(a|aa)+$``
against 48 ``a``s and a ``!`` would stop every call for minutes.  Patterns are therefore
compiled with the ``regex`` package and each match runs with a time limit of
:data:`MATCH_TIMEOUT` seconds and the interpreter released (``concurrent=True``), on the
worker thread the read runs on; a match over the limit fails that call with
INVALID_ARGUMENT naming the pattern.  Patterns are at most :data:`MAX_PATTERN` characters.
A time limit is kept rather than a refusal of "dangerous shapes" (nested quantifiers):
no such check catches every slow pattern (``(a|aa)+`` has no nested quantifier), while
the time limit bounds them all.  Results are cached per name (names of at most
:data:`CACHED_NAME` characters, :data:`CACHE_SIZE` of them, the oldest forgotten first): the
names a filter meets repeat (event types always), and a cached answer costs far less than a
timed match.  A live subscription's next events are filtered on the event loop only when
every answer they need is cached (:attr:`EventFilter.settled`); a timed match never runs there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import regex

from eventstore_lite.codec import STREAM, TYPE, Row
from eventstore_lite.errors import BadRequest, HandlerException

DEFAULT_WINDOW = 32  # the server's max search window when the client sends ``count``
MAX_PATTERN = 16_384  # characters in one filter regex
MATCH_TIMEOUT = 0.1  # seconds one match may take
CACHE_SIZE = 4096  # names whose result a filter remembers
CACHED_NAME = 256  # longer names are matched every time (the cache must stay small)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A compiled filter; ``checkpoint_interval`` counts events considered.

    ``settled(row)`` is True when ``matches(row)`` needs no timed regex match (a prefix filter, or
    the answer for that name is remembered): only then may a match run on the event loop."""

    matches: Callable[[Row], bool]
    checkpoint_interval: int
    settled: Callable[[Row], bool]


class TimedSearch:
    """A client regex as a time-limited search that remembers its answers (see the module docstring)."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise BadRequest(f"Filter regex is {len(pattern)} characters long; at most {MAX_PATTERN} are accepted.")
        try:
            self._search = regex.compile(pattern, regex.VERSION0).search
        except (regex.error, RecursionError, OverflowError, ValueError) as exc:
            raise HandlerException(f"invalid filter regex {pattern!r}: {exc}") from None
        self._pattern = pattern
        self._answers: dict[str, bool] = {}  # insertion-ordered: the oldest answer is forgotten first

    def __call__(self, name: str) -> bool:
        answer = self._answers.get(name)
        if answer is None:
            answer = self._timed(name)
            if len(name) <= CACHED_NAME:
                if len(self._answers) >= CACHE_SIZE:
                    self._answers.pop(next(iter(self._answers)), None)
                self._answers[name] = answer
        return answer

    def known(self, name: str) -> bool:
        """True when the answer for ``name`` is remembered (no timed match needed)."""
        return name in self._answers

    def _timed(self, name: str) -> bool:
        try:
            return self._search(name, timeout=MATCH_TIMEOUT, concurrent=True) is not None
        except TimeoutError:
            raise BadRequest(
                f"Filter regex {self._pattern!r} took longer than {MATCH_TIMEOUT * 1000:.0f} ms on one name "
                "(catastrophic backtracking?); simplify it."
            ) from None


def compile_regex(pattern: str) -> TimedSearch:
    """A client regex as a time-limited search (see the module docstring)."""
    return TimedSearch(pattern)


def build_filter(options: Any) -> EventFilter:
    """Build a filter from ``ReadReq.Options.FilterOptions``."""
    which = options.WhichOneof("filter")
    if which is None:
        raise HandlerException("filter options without stream_identifier or event_type")
    expression = getattr(options, which)
    matches, settled = _matcher(which == "event_type", expression.regex, tuple(expression.prefix))
    window = options.max if options.WhichOneof("window") == "max" else DEFAULT_WINDOW
    interval = max(1, window) * max(1, options.checkpointIntervalMultiplier)
    return EventFilter(matches=matches, checkpoint_interval=interval, settled=settled)


def _matcher(by_type: bool, pattern: str, prefixes: tuple[str, ...]) -> tuple[Callable[[Row], bool], Callable[[Row], bool]]:
    """``(matches, settled)`` of a filter on the event type or the stream name."""
    name: Callable[[Row], str] = _type_of if by_type else _stream_of
    if pattern:
        search = compile_regex(pattern)
        return (lambda row: search(name(row))), (lambda row: search.known(name(row)))
    return (lambda row: name(row).startswith(prefixes)), _always


def _type_of(row: Row) -> str:
    return row[TYPE]


def _stream_of(row: Row) -> str:
    return row[STREAM]


def _always(row: Row) -> bool:
    return True
