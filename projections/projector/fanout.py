"""One reading of ``$all`` shared by every runner of a projector process (a member reads ``$all`` once for all
the partitions it owns, and fans the events out).

Contract:

* each runner has a :class:`Tap`: the event types it folds, a :class:`~projections.projector.feed.Feed` and the
  position ``after`` which it has been fed up to. It gets, in ``$all`` order and each once, every event of its
  types after ``after``, the subscription's checkpoints after ``after`` and its caught-up markers;
* the reader subscribes from the lowest ``after`` of its taps, with the union of their types as the server-side
  filter; a tap that (re)starts behind what the reader has already read makes it read that gap again, and the
  other taps skip what they were fed (:meth:`SharedReader.restart`). A tap far behind while others are live
  catches up on its own first (:meth:`SharedReader.far_behind`), so the live ones do not wait for its history;
* a tap whose runner does not take its events (stalled on Redis, stopped on a bad event) holds the reader at
  most ``stall_s``; then it is left behind (``overflowed``) and its runner asks for the gap again once it has
  drained its feed. The others go on;
* the store failing ends the subscription: every tap gets the error (its runner stalls, as with a subscription
  of its own), and the reader subscribes again with backoff.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from projections.errors import BadEvent, EventStoreUnavailable
from projections.events import Decoded, Recorded, decode
from projections.eventstore import EventStore, Marker
from projections.projector.feed import Feed
from projections.projector.reader import ReaderProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fanned(Recorded):
    """An event as the shared reader hands it out: decoded once for every runner it goes to (``outcome``: what
    :func:`~projections.events.decode` gave, or the BadEvent it raised)."""

    outcome: Decoded | BadEvent


def decoded(item: Fanned) -> Decoded:
    """What the shared reader's decoding gave (raises the BadEvent it met, a fresh one: each runner raises its own)."""
    outcome = item.outcome
    if isinstance(outcome, BadEvent):
        raise BadEvent(outcome.field, outcome.reason)
    return outcome


def _fanned(item: Recorded) -> Fanned:
    try:
        outcome: Decoded | BadEvent = decode(item)
    except BadEvent as exc:
        outcome = exc
    return Fanned(item.envelope, item.data, outcome)


class Source(Protocol):
    def __iter__(self) -> Iterator[Recorded | Marker]: ...
    def stop(self) -> None: ...


Opener = Callable[[int | None, Sequence[str]], Source]


@dataclass(eq=False)
class Tap:
    """What one runner is fed (see the module doc)."""

    name: str
    types: frozenset[str]
    feed: Feed
    after: int = 0
    started: bool = False  # its runner has said from where (:meth:`SharedReader.restart`)
    waiting: bool = False  # restarted behind the reader: fed again once the reader has gone back far enough
    overflowed: bool = False  # left behind: its runner took nothing for ``stall_s``
    live: bool = False  # its runner has caught up (set by the runner)
    attached: bool = True


@dataclass
class SharedReader:
    """The reader thread and its taps (see the module doc). ``open_source(after, types)`` subscribes."""

    open_source: Opener
    stall_s: float = 2.0
    settle_s: float = 1.0  # before the first reading, how long runners started together have to say from where
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    taps: list[Tap] = field(default_factory=list)
    position: int | None = None  # everything up to here has been offered to the taps (None: not reading)
    reads: int = 0  # subscriptions opened (the first and every re-read)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._rewind = False
        self._stopped = False
        self._types: frozenset[str] = frozenset()
        self._source: Source | None = None
        self._thread: threading.Thread | None = None

    # -- the runners' side ---------------------------------------------------------

    def attach(self, name: str, types: Iterable[str], limit: int) -> Tap:
        """A tap for a runner (fed nothing until :meth:`restart` says from where)."""
        tap = Tap(name, frozenset(types), Feed(limit), waiting=True)
        with self._lock:
            self.taps.append(tap)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="read-$all")
                self._thread.start()
        return tap

    def detach(self, tap: Tap) -> None:
        with self._lock:
            tap.attached = False
            if tap in self.taps:
                self.taps.remove(tap)
            tap.feed.close()
            self._lock.notify_all()

    def restart(self, tap: Tap, after: int) -> None:
        """Feed ``tap`` from ``after`` on (its runner's checkpoint), dropping what its feed holds."""
        with self._lock:
            tap.feed.reset()
            tap.after, tap.overflowed, tap.started = after, False, True
            behind = self.position is not None and (after < self.position or not tap.types <= self._types)
            tap.waiting = behind or self.position is None
            if behind:
                self._rewind = True
                source = self._source
            else:
                source = None
            self._lock.notify_all()
        if source is not None:
            source.stop()  # the reader thread sees the end of its iteration and reads again

    def far_behind(self, tap: Tap, after: int, count: Callable[[int, Sequence[str], int], int], bound: int) -> bool:
        """Whether ``tap``'s runner should catch up on its own from ``after``: another tap is live and at
        least ``bound`` events of its types lie between ``after`` and what the reader has read."""
        with self._lock:
            others_live = any(t.live for t in self.taps if t is not tap)
            position = self.position
        if not others_live or position is None or after >= position or bound < 0:
            return False
        return count(after, sorted(tap.types), bound) >= bound

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            source = self._source
            self._lock.notify_all()
        if source is not None:
            source.stop()
        if self._thread is not None:
            self._thread.join(5)

    # -- the reader thread ---------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            with self._lock:
                start, types = self._await_start()
                if start is None:
                    return
            try:
                source = self.open_source(start or None, types)
            except Exception as exc:  # noqa: BLE001 - every tap hears of it; the reader tries again
                delay = self._failed(exc, delay)
                continue
            self.reads += 1
            with self._lock:
                self._source = source
                stale = self._rewind or self._stopped
            if stale:
                source.stop()
            try:
                ended = self._pump(source)
                if not ended:
                    delay = self.backoff_initial
                    continue
                raise EventStoreUnavailable("the subscription to $all ended")
            except Exception as exc:  # noqa: BLE001 - as above
                if self._rewind or self._stopped:
                    continue
                delay = self._failed(exc, delay)
            finally:
                source.stop()
                with self._lock:
                    self._source = None

    def _await_start(self) -> tuple[int | None, list[str]]:
        """Wait (holding the lock) for a started tap; the position to read from and the types (None: stopped).
        The first reading waits up to ``settle_s`` for every attached runner to start, so runners started together
        share it from the beginning."""
        settle_until: float | None = None
        while not self._stopped:
            started = [t for t in self.taps if t.started]
            if started and self.reads == 0 and len(started) < len(self.taps):
                settle_until = settle_until or time.monotonic() + self.settle_s
                if time.monotonic() < settle_until:
                    self._lock.wait(settle_until - time.monotonic())
                    continue
            if started:
                break
            self._lock.wait()
        if self._stopped:
            return None, []
        started = [t for t in self.taps if t.started]
        start = min(t.after for t in started)
        self._types = frozenset().union(*(t.types for t in started))
        self._rewind = False
        self.position = start
        for tap in started:
            tap.waiting = False
        return start, sorted(self._types)

    def _pump(self, source: Source) -> bool:
        """Offer every item to the taps until a re-read or a stop is asked (False) or the source ends (True)."""
        for item in source:
            if self._rewind or self._stopped:
                return False
            if item.__class__ is Recorded:
                position: int | None = item.envelope.position
                kind: str | None = item.envelope.type
                item = _fanned(item)  # decoded once, here, for every runner it goes to
            elif item.is_caught_up:
                position, kind = None, None
            else:
                position, kind = item.commit_position - 1, None
            with self._lock:
                if position is not None and self.position is not None and position > self.position:
                    self.position = position
                taps = list(self.taps)
            for tap in taps:
                self._offer(tap, item, position, kind)
        return not (self._rewind or self._stopped)

    def _offer(self, tap: Tap, item: Recorded | Marker, position: int | None, kind: str | None) -> None:
        waited_since = 0.0
        while True:
            with self._lock:
                if tap.waiting or not tap.attached or self._rewind or self._stopped:
                    return
                if position is not None and position <= tap.after:
                    return
                if kind is not None and kind not in tap.types:
                    return
                if tap.feed.offer(item):
                    if position is not None:
                        tap.after = position
                    return
                now = time.monotonic()
                waited_since = waited_since or now
                if now - waited_since > self.stall_s:
                    log.warning("runner %s took no event for %.1f s: left behind at %s; it reads again from there "
                                "once it takes events", tap.name, self.stall_s, tap.after)
                    tap.waiting = tap.overflowed = True
                    return
            time.sleep(0.001)

    def _failed(self, exc: Exception, delay: float) -> float:
        error = exc if isinstance(exc, EventStoreUnavailable) else EventStoreUnavailable(f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.position = None
            for tap in self.taps:
                tap.waiting = True  # its runner starts a new session once it has taken what it was fed, and says from where
                tap.feed.push(error)
            sleep = random.uniform(0, delay)
            log.warning("reading $all failed (%s); reading again in %.2fs", exc, sleep)
            self._lock.wait(sleep)
        return min(self.backoff_max, delay * 2)


class Sources:
    """Opens the shared reader's subscriptions: a long catch-up (at least ``process_after`` events behind the
    head) is read by a reader process up to the head as it stood, then by an in-process subscription."""

    def __init__(self, uri: str, window: int, process_after: int) -> None:
        self.uri, self.window, self.process_after = uri, window, process_after
        self.store = EventStore(uri)

    def open(self, after: int | None, types: Sequence[str]) -> Source:
        try:
            return self._open(after, types)
        except EventStoreUnavailable:
            self.store.close()
            self.store = EventStore(self.uri)  # a new channel for the next try
            raise

    def _open(self, after: int | None, types: Sequence[str]) -> Source:
        head = self.store.head(types)
        target = head.position if head else 0
        far = (self.process_after >= 0 and target > (after or 0)
               and self.store.count_after(after or 0, types, self.process_after) >= self.process_after)
        if not far:
            return self.store.subscribe(after, types, self.window)
        return _ThenLive(self, ReaderProcess(self.uri, after, types, self.window, flush_at=target), target, types)

    def close(self) -> None:
        self.store.close()


class _ThenLive:
    """A reader process's items up to ``target``, then an in-process subscription's from where it stopped."""

    def __init__(self, sources: Sources, process: ReaderProcess, target: int, types: Sequence[str]) -> None:
        self.sources, self.target, self.types = sources, target, types
        self.current: Source = process
        self.stopped = False

    def __iter__(self) -> Iterator[Recorded | Marker]:
        last = 0
        for item in self.current:
            yield item
            last = item.envelope.position if isinstance(item, Recorded) else max(last, item.commit_position - 1)
            if last >= self.target or self.stopped:
                break
        self.current.stop()
        if self.stopped:
            return
        self.current = self.sources.store.subscribe(last or None, self.types, self.sources.window)
        if self.stopped:
            self.current.stop()
        yield from self.current

    def stop(self) -> None:
        self.stopped = True
        self.current.stop()
