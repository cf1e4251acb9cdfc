"""One user's history folded while it is read: the replay a per-user rebuild, a consistency check and the
verification of a generation share.

*Reading.* :func:`history` merges the user's streams (``events.user_streams``) into ``$all`` order, reading
each page by page; every item carries its stream revision, so a later read resumes where a fold stopped.

*Folding.* A :class:`Fold` is one entity of one projection: it takes the items up to the projection's
checkpoint, keeps the events of its entity, and folds them in chunks of ``CHUNK`` with the projector's pure
folds (``projector/fold.py``). It keeps only what the image needs: the states the events touched, the newest
entries of the entity's append-only keys (the position history is capped) and, per stream, where to resume.
So the memory it takes does not grow with the user's history, and a retry after the live projector moved
the entity reads and folds only what came since. :func:`advance` feeds one read to several folds (one per
projection, each up to its own checkpoint): the history is read once for all of them.

*Partitions.* A fold of a user in a generation split into partitions stands in the user's partition
(``Fold.partition``) and folds as that partition's live runner does (``fold_batch(..., partition=)``), reading the
marks from that partition's own copy of the ``rebalance-marks`` index (replicated in every partition).

*Marks.* A full replay values a portfolio at the marks of each of the user's events, but only a rebalance's
and the last event's outlive the next event (``portfolio.marks_outlive``); anywhere else any marks give the
same final state. A rebalance's marks come from the portfolio's ``rebalance-marks`` index (what the
projector folded it with, replay-exact); the last event's, and a rebalance's the index no longer keeps, are
the last price of each pair read backwards from the event (:func:`marks_at`). A fold therefore holds back the
newest event it took until it knows whether that event is the last one up to the checkpoint.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from projections.codec import text
from projections.errors import BadEvent
from projections.events import CanaryAppended, DomainEvent, Ignored, PriceUpdated, Recorded, decode, user_streams
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, Unattended, check
from projections.partitions import Partition
from projections.projector.fold import fold_batch
from projections.readmodels.base import Append, ReadModel, Ref, Rendered
from projections.readmodels.portfolio import MARKS, Marks, marks_outlive, pairs_of, parse_rebalance_marks

CHUNK = 2000  # events folded per call (states are carried from one chunk to the next)
PAGE = 1024  # events of a stream read per call (a page of each of the user's streams is held at once)
CHECK_EVERY = 1000  # items read between two looks at the control (a cancel is honoured within a second)

Item = tuple[int, str, int, "DomainEvent | None"]  # (commit position, stream, revision, the event; None: not folded)
Need = tuple[int, frozenset[str]]  # the marks of these pairs just before this commit position
MarksOf = Callable[[Sequence[Need]], dict[int, dict[str, float]]]


def history(store: EventStore, user_id: str, cursor: Mapping[str, int] | None = None, upto: int | None = None
            ) -> Iterator[Item]:
    """The items of the user's streams in ``$all`` order, each stream from its revision in ``cursor`` (0 when
    absent), up to commit position ``upto``; undecodable events (parked by the live projector, skipped by a
    replay) come as None."""
    start = cursor or {}
    streams = [_items(store, stream, start.get(stream, 0)) for stream in user_streams(user_id)]
    for item in heapq.merge(*streams, key=lambda i: i[0]):
        if upto is not None and item[0] > upto:
            return
        yield item


def _items(store: EventStore, stream: str, revision: int) -> Iterator[Item]:
    for at, recorded in store.read_stream_from(stream, revision, PAGE):
        yield recorded.envelope.position, stream, at, decoded(recorded)


def decoded(recorded: Recorded) -> DomainEvent | None:
    """The event a replay folds (None: bad, of an ignored type, or a canary)."""
    try:
        event = decode(recorded)
    except BadEvent:
        return None
    return None if isinstance(event, (Ignored, CanaryAppended)) else event


@dataclass
class Fold:
    """The replay of one entity (``ref`` of ``m`` in ``ks``), carried from one attempt to the next (module doc)."""

    m: ReadModel
    ks: KeySpace
    ref: Ref
    marks_of: MarksOf | None = None  # where the true marks come from (None: the read model folds no prices)
    partition: Partition | None = None  # the partition ``ks`` is (folds as its live runner does); None: unsplit
    states: dict[Ref, Any] = field(default_factory=dict)
    newest: dict[str, dict[str, float]] = field(default_factory=dict)  # the entity's append-only keys' entries
    events_upto: int = 0  # every event of the user at or before this position is folded
    count: int = 0  # events of the entity folded
    cursor: dict[str, int] = field(default_factory=dict)  # per stream, the revision to read from next
    pairs: set[str] = field(default_factory=set)  # every pair the folded events named (the last event's marks)
    _held: list[DomainEvent] = field(default_factory=list)  # taken, not folded: the newest may be the last
    _caps: dict[str, int] = field(default_factory=dict)

    def take(self, item: Item) -> None:
        """One item of the user's history at or before the checkpoint this attempt folds up to."""
        position, stream, revision, event = item
        self.cursor[stream] = revision + 1
        if (event is None or position <= self.events_upto or event.envelope.type not in self.m.event_types
                or self.ref not in self.m.touches(event)):
            return
        self._held.append(event)
        if len(self._held) > CHUNK:
            self._fold(self._held[:-1], last=False)
            del self._held[:-1]

    def close(self, checkpoint: int) -> None:
        """Every item up to ``checkpoint`` was taken: fold what is held, its newest event as the last."""
        self._fold(self._held, last=True)
        self._held = []
        self.events_upto = max(self.events_upto, checkpoint)

    def image(self) -> Rendered:
        """The entity's image (its append-only keys included) as a full replay up to ``events_upto`` leaves it."""
        state = self.states.get(self.ref)
        image = Rendered() if state is None else self.m.render(self.ks, self.ref, state)
        newest = {key: _top(members, self._caps[key]) for key, members in self.newest.items()}
        return Rendered(owned=image.owned, zsets={**image.zsets, **newest}, hfields=image.hfields)

    def _fold(self, events: list[DomainEvent], last: bool) -> None:
        if not events:
            return
        marks: dict[int, dict[str, float]] = {}
        if self.marks_of is not None:
            marks = self.marks_of(marks_needed(events, self.pairs, last))
        own = own_append_keys(self.m, self.ks, self.ref)
        for chunk, at in segments(events, marks):
            if at is not None:
                self.states[MARKS] = Marks(at)  # the marks as a full replay has them at this event
            result = fold_batch(self.m, self.ks, self.states, chunk, partition=self.partition)
            self.states.update(result.changed)
            self._append(a for a in result.appends if a.key in own)  # not the shared rebalance-marks index
        self.count += len(events)

    def _append(self, entries: Iterable[Append]) -> None:
        """Keep the newest ``cap`` entries of each key by score, as the capped key does (trimmed when twice over)."""
        for entry in entries:
            members = self.newest.setdefault(entry.key, {})
            members[entry.member] = entry.score
            self._caps[entry.key] = entry.cap
            if len(members) > 2 * entry.cap:
                self.newest[entry.key] = _top(members, entry.cap)


def _top(members: dict[str, float], cap: int) -> dict[str, float]:
    return dict(sorted(members.items(), key=lambda kv: kv[1])[-cap:])


def new_fold(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, ref: Ref,
             partition: Partition | None = None) -> Fold:
    """A fold of ``ref`` in ``ks`` (``partition``'s key space, when the generation is split) that reads its marks
    where a full replay's are, in that partition's own copy of the replicated ones (module doc)."""
    if "PriceUpdated" not in m.event_types:
        return Fold(m, ks, ref, partition=partition)
    return Fold(m, ks, ref, lambda needs: marks_at(client, store, ks, needs), partition)


def advance(folds: Sequence[tuple[Fold, int]], items: Iterable[Item], control: Control | None = None,
            total: int | None = None, phase: str = "") -> None:
    """Give each of ``folds`` the ``items`` (in ``$all`` order) up to its checkpoint, then close it there;
    JobCancelled between two pages if ``control`` asks; with a ``phase``, the items read reported to ``control``
    (of ``total``)."""
    control = control or Unattended()
    for i, item in enumerate(items, 1):
        if i % CHECK_EVERY == 0:
            check(control)
            if phase:
                control.report(i, total, phase)
        for fold, checkpoint in folds:
            if item[0] <= checkpoint:
                fold.take(item)
    for fold, checkpoint in folds:
        fold.close(checkpoint)


def history_length(store: EventStore, user_id: str) -> int:
    """How many events the user's streams hold (what :func:`history` reads at most)."""
    return sum(store.stream_length(stream) for stream in user_streams(user_id))


def catch_up(fold: Fold, store: EventStore, checkpoint: int, control: Control | None = None) -> Rendered:
    """Fold what the user's streams hold after ``fold``'s cursor up to ``checkpoint``; the image then."""
    advance([(fold, checkpoint)], history(store, fold.ref[1], fold.cursor, checkpoint), control)
    return fold.image()


def with_marks(events: Iterable[DomainEvent], marks_of: MarksOf | None) -> Iterator[tuple[DomainEvent, dict[str, float] | None]]:
    """Each of one entity's ``events`` with the true marks a replay folds it with (None: any marks do), as a
    :class:`Fold` finds them: for a caller that folds the events one at a time (an explanation)."""
    pairs: set[str] = set()
    held: list[DomainEvent] = []

    def marked(chunk: list[DomainEvent], last: bool) -> Iterator[tuple[DomainEvent, dict[str, float] | None]]:
        marks = marks_of(marks_needed(chunk, pairs, last)) if marks_of is not None and chunk else {}
        return ((event, marks.get(event.envelope.position)) for event in chunk)

    for event in events:
        held.append(event)
        if len(held) > CHUNK:
            yield from marked(held[:-1], last=False)
            del held[:-1]
    yield from marked(held, last=True)


def own_append_keys(m: ReadModel, ks: KeySpace, ref: Ref) -> set[str]:
    """The append-only keys that are the entity's own (the portfolio's position history)."""
    return m.own_append_keys(ks, ref)


def marks_needed(events: Sequence[DomainEvent], pairs: set[str], last: bool = True) -> list[Need]:
    """Where one user's portfolio fold needs the true marks: before each event whose marks outlive the
    next event (a rebalance: of its pairs) and, if ``last``, before the last of ``events`` (of every pair
    the user has named so far, ``pairs``, updated); see ``portfolio.marks_outlive``. Anywhere else, any
    marks give the same final state."""
    needs: list[Need] = []
    for i, event in enumerate(events):
        pairs.update(pairs_of(event))
        if marks_outlive(event):
            needs.append((event.envelope.position, frozenset(pairs_of(event))))
        elif last and i == len(events) - 1:
            needs.append((event.envelope.position, frozenset(pairs)))
    return needs


def segments(events: Sequence[DomainEvent], marks: dict[int, dict[str, float]]
             ) -> Iterator[tuple[list[DomainEvent], dict[str, float] | None]]:
    """``events`` cut into folds: each event with marks in ``marks`` alone, with them, the others in
    runs of at most ``CHUNK``."""
    chunk: list[DomainEvent] = []
    for event in events:
        at = marks.get(event.envelope.position)
        if chunk and (at is not None or len(chunk) >= CHUNK):
            yield chunk, None
            chunk = []
        if at is not None:
            yield [event], at
        else:
            chunk.append(event)
    if chunk:
        yield chunk, None


def marks_at(client: redis.Redis, store: EventStore, ks: KeySpace, needs: Sequence[Need]) -> dict[int, dict[str, float]]:
    """The marks of each need. A rebalance's come from the ``rebalance-marks`` index (one pipelined read
    for all of them); the rest (the last event, a rebalance older than the index keeps) are read
    backwards from the store (:func:`latest_prices`)."""
    if not needs:
        return {}
    pipe = client.pipeline(transaction=False)
    for position, _ in needs:
        pipe.zrangebyscore(ks.rebalance_marks(), position, position)
    found: dict[int, dict[str, float]] = {}
    for (position, pairs), members in zip(needs, pipe.execute()):
        if members:
            found[position] = parse_rebalance_marks(text(members[0]))[1]
        else:
            found[position] = {p.pair: p.price for p in latest_prices(store, position, set(pairs))}
    return found


def latest_prices(store: EventStore, before: int, pairs: set[str]) -> list[PriceUpdated]:
    """The last ``PriceUpdated`` of each of ``pairs`` before commit position ``before``, oldest first
    (a pair never priced reads back to the start of ``$all``; bad events are skipped, as a replay
    skips them)."""
    found: dict[str, PriceUpdated] = {}
    if not pairs:
        return []
    for recorded in store.read_types_before(["PriceUpdated"], before):
        price = decoded(recorded)
        if isinstance(price, PriceUpdated) and price.pair in pairs and price.pair not in found:
            found[price.pair] = price
            if len(found) == len(pairs):
                break
    return sorted(found.values(), key=lambda p: p.envelope.position)
