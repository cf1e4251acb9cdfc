"""Reading users for a check: each user's snapshot, events and marks — in this process, or read ahead by a
child process so reading and folding run on two cores.

Why a child: esdbclient receives one gRPC message per event, and its hand-off between gRPC's threads and ours
costs about as much CPU as folding the event; in one process (one GIL) the two add up, as they do for a
catch-up (see :mod:`projections.projector.reader`).

:func:`read_user` takes the user's snapshot in every projection (the checkpoint C of the partition holding the
user and the entity's ``lastPosition`` there, one MULTI/EXEC), *then* reads the user's events up to the highest C — so every event up to
each C is among them —, page by page as they are folded (:func:`projections.maintenance.user_fold.history`).
:class:`UserReaderProcess` does the same for a list of users in ``python -m projections.maintenance.user_reader``,
pickling to its stdout per user a :class:`UserRead` header, the user's events in pages of ``PAGE``, and an end
mark; the pipe bounds how far ahead it runs (a page or two), so neither process holds a user's whole history
and its snapshots are as fresh as a thread's would be.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from projections.connection import connect
from projections.errors import EventStoreUnavailable
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.pointer import space, user_space
from projections.maintenance.user_fold import Item, history
from projections.maintenance.user_rebuild import snapshots
from projections.partitions import Partition, partition_of
from projections.projector.reader import exit_with_parent, stop_child
from projections.readmodels import model, user_projections

PAGE = 1000  # events pickled per message of the reader process

@dataclass(frozen=True)
class UserRead:
    """One user's snapshot in each projection and the user's events read after it (read once, in order)."""

    user_id: str
    projections: tuple[str, ...]
    generations: tuple[int, ...]
    shots: tuple[tuple[int, str], ...]  # (checkpoint C, lastPosition L) per projection, in the user's partition
    counts: tuple[int, ...]  # per projection, how many partitions the generation is split into
    items: Iterable[Item] = ()  # the user's history up to the highest C (``user_fold.history``)

    def partitions(self) -> list[Partition]:
        """The partition holding the user in each projection."""
        return [Partition(p, partition_of(self.user_id, c), c) for p, c in zip(self.projections, self.counts)]

    def spaces(self) -> list[KeySpace]:
        """The key space of the user's partition in each projection."""
        return [space(part, g) for part, g in zip(self.partitions(), self.generations)]


def read_user(client: redis.Redis, store: EventStore, user_id: str, projections: Sequence[str] | None) -> UserRead:
    names = tuple(projections or user_projections())
    models = [model(name) for name in names]
    owned = [user_space(client, name, user_id) for name in names]
    shots = snapshots(client, [(ks, m.main_key(ks, (str(m.user_kind), user_id))) for m, (ks, _) in zip(models, owned)])
    upto = max((checkpoint for checkpoint, _ in shots), default=0)  # after every snapshot: all the events up to each C
    return UserRead(user_id, names, tuple(ks.generation for ks, _ in owned), tuple(shots),
                    tuple(part.count for _, part in owned), history(store, user_id, upto=upto))


class UserReaderProcess:
    """:func:`read_user` of each of ``work``'s (user, projections), in order, by a child process."""

    def __init__(self, redis_url: str, uri: str, work: Sequence[tuple[str, Sequence[str]]]) -> None:
        request = {"redis": redis_url, "uri": uri, "work": [[u, list(p)] for u, p in work]}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen([sys.executable, "-m", "projections.maintenance.user_reader"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request).encode())
        self._process.stdin.close()

    def __iter__(self) -> Iterator[UserRead]:
        """Each user's read; its ``items`` must be read to the end before the next user is asked for."""
        while True:
            header = self._next(end_ok=True)
            if header is None:
                return
            yield replace(header, items=self._pages())

    def _pages(self) -> Iterator[Item]:
        while (page := self._next()) is not None:
            yield from page

    def _next(self, end_ok: bool = False) -> Any:
        pipe = self._process.stdout
        assert pipe is not None
        try:
            message = pickle.load(pipe)
        except EOFError:
            if end_ok:
                return None
            raise EventStoreUnavailable(f"the user reader process ended mid-user (exit {self._process.poll()})") from None
        except (pickle.UnpicklingError, OSError, ValueError) as exc:
            raise EventStoreUnavailable(f"the user reader process ended (exit {self._process.poll()}): {exc}") from None
        if isinstance(message, dict):
            raise EventStoreUnavailable(f"the user reader process failed: {message['error']}")
        return message

    def stop(self) -> None:
        """End the child (safe to call twice)."""
        stop_child(self._process)


def _serve(request: dict[str, Any], out: Any) -> None:
    client = connect(request["redis"])
    try:
        with EventStore(request["uri"]) as store:
            for user, projections in request["work"]:
                read = read_user(client, store, user, projections)
                pickle.dump(replace(read, items=()), out, pickle.HIGHEST_PROTOCOL)
                page: list[Item] = []
                for item in read.items:
                    page.append(item)
                    if len(page) >= PAGE:
                        pickle.dump(page, out, pickle.HIGHEST_PROTOCOL)
                        page = []
                pickle.dump(page, out, pickle.HIGHEST_PROTOCOL)
                pickle.dump(None, out, pickle.HIGHEST_PROTOCOL)  # the user's end
                out.flush()
    except BrokenPipeError:
        return
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which fails the check with it
        pickle.dump({"error": f"{type(exc).__name__}: {exc}"}, out, pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    from projections.maintenance import user_reader  # by its name, so what it pickles unpickles in the parent

    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        user_reader._serve(json.loads(sys.stdin.buffer.read()), sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
