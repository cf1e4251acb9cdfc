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
:data:`CACHED_NAME` characters, :data:`CACHE_SIZE` of them): the names a filter meets
repeat (event types always), and a cached answer costs far less than a timed match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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
    """A compiled filter; ``checkpoint_interval`` counts events considered."""

    matches: Callable[[Row], bool]
    checkpoint_interval: int


def compile_regex(pattern: str) -> Callable[[str], bool]:
    """A client regex as a time-limited search (see the module docstring)."""
    if len(pattern) > MAX_PATTERN:
        raise BadRequest(f"Filter regex is {len(pattern)} characters long; at most {MAX_PATTERN} are accepted.")
    try:
        search = regex.compile(pattern, regex.VERSION0).search
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        raise HandlerException(f"invalid filter regex {pattern!r}: {exc}") from None

    def timed(name: str) -> bool:
        try:
            return search(name, timeout=MATCH_TIMEOUT, concurrent=True) is not None
        except TimeoutError:
            raise BadRequest(
                f"Filter regex {pattern!r} took longer than {MATCH_TIMEOUT * 1000:.0f} ms on one name "
                "(catastrophic backtracking?); simplify it."
            ) from None

    cached = lru_cache(maxsize=CACHE_SIZE)(timed)
    return lambda name: cached(name) if len(name) <= CACHED_NAME else timed(name)


def build_filter(options: Any) -> EventFilter:
    """Build a filter from ``ReadReq.Options.FilterOptions``."""
    which = options.WhichOneof("filter")
    if which is None:
        raise HandlerException("filter options without stream_identifier or event_type")
    expression = getattr(options, which)
    matches = _matcher(which == "event_type", expression.regex, tuple(expression.prefix))
    window = options.max if options.WhichOneof("window") == "max" else DEFAULT_WINDOW
    interval = max(1, window) * max(1, options.checkpointIntervalMultiplier)
    return EventFilter(matches=matches, checkpoint_interval=interval)


def _matcher(by_type: bool, pattern: str, prefixes: tuple[str, ...]) -> Callable[[Row], bool]:
    if pattern:
        search = compile_regex(pattern)
        if by_type:
            return lambda row: search(row[TYPE])
        return lambda row: search(row[STREAM])
    if by_type:
        return lambda row: row[TYPE].startswith(prefixes)
    return lambda row: row[STREAM].startswith(prefixes)
