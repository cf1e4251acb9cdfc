"""Server-side ``$all`` filters: on event type or stream name, by regex or prefixes.

Regexes use search semantics (``re.search``) like the server's .NET ``Regex.IsMatch``;
.NET named groups ``(?<name>...)`` are accepted.  An uncompilable regex fails the
RPC the way the real server does (an unhandled exception in the handler).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from eventstore_lite.codec import STREAM, TYPE, Row
from eventstore_lite.errors import HandlerException

DEFAULT_WINDOW = 32  # the server's max search window when the client sends ``count``

_DOTNET_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A compiled filter; ``checkpoint_interval`` counts events considered."""

    matches: Callable[[Row], bool]
    checkpoint_interval: int


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a client regex, translating .NET-only syntax Python lacks."""
    try:
        return re.compile(_DOTNET_NAMED_GROUP.sub("(?P<", pattern))
    except (re.error, RecursionError, OverflowError) as exc:
        raise HandlerException(f"invalid filter regex {pattern!r}: {exc}") from None


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


def _matcher(by_type: bool, regex: str, prefixes: tuple[str, ...]) -> Callable[[Row], bool]:
    if regex:
        search = compile_regex(regex).search
        if by_type:
            return lambda row: search(row[TYPE]) is not None
        return lambda row: search(row[STREAM]) is not None
    if by_type:
        return lambda row: row[TYPE].startswith(prefixes)
    return lambda row: row[STREAM].startswith(prefixes)
