"""eventstore_lite: an embedded EventStoreDB-compatible gRPC server on SQLite.

It speaks enough of the EventStoreDB gRPC protocol (Streams service and an empty
PersistentSubscriptions ``List``) for ``esdbclient`` to append, read, subscribe,
delete and tombstone exactly as it would against a real server.  It knows nothing
of the rest of the project.

Public entry point: :class:`eventstore_lite.server.EventStoreServer`.
"""

from __future__ import annotations

__all__ = ["EventStoreServer"]


def __getattr__(name: str) -> object:
    # Lazy so that ``python -m eventstore_lite`` and light imports stay cheap.
    if name == "EventStoreServer":
        from eventstore_lite.server import EventStoreServer

        return EventStoreServer
    raise AttributeError(name)
