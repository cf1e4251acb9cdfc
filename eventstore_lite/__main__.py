"""``python -m eventstore_lite --listen HOST:PORT --db PATH [limits]``

Runs the embedded store until SIGINT/SIGTERM, then stops cleanly and exits 0.
Bad arguments print one line naming the option and exit 2.  Each limit is an option
whose default comes from the environment variable ``EVENTSTORE_LITE_<OPTION>``
(``--max-subscriptions`` from ``EVENTSTORE_LITE_MAX_SUBSCRIPTIONS``), else from the
defaults in :mod:`eventstore_lite.server`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Callable, NoReturn

from eventstore_lite.server import (
    DEFAULT_KEEPALIVE_S,
    DEFAULT_MAX_APPEND_EVENTS,
    DEFAULT_MAX_APPEND_SIZE,
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_OPEN_BATCHES,
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_WORKERS,
    EventStoreServer,
)

log = logging.getLogger("eventstore_lite")

MAX_APPEND_LIMIT = 16 * 1024 * 1024


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (port 0-65535), got {value!r}")
    return host.strip("[]"), int(port)


def _append_size(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) <= MAX_APPEND_LIMIT:
        raise argparse.ArgumentTypeError(f"expected bytes between 1 and {MAX_APPEND_LIMIT}, got {value!r}")
    return int(value)


def _count(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"expected a whole number between 1 and 1000000, got {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds between 1 and 86400, got {value!r}")
    return seconds


def _trace_file(value: str) -> str:
    """A file to append to, in a directory that exists and is writable."""
    folder = os.path.dirname(os.path.abspath(value)) if value else ""
    if not value or os.path.isdir(value) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"EVENTSTORE_LITE_TRACE: expected a file path in an existing, writable directory, got {value!r}")
    return value


def _limit(
    parser: argparse.ArgumentParser, option: str, convert: Callable[[str], object], default: object, metavar: str, help: str
) -> None:
    """An option whose default is the environment variable ``EVENTSTORE_LITE_<OPTION>``, if set."""
    env = "EVENTSTORE_LITE_" + option.removeprefix("--").replace("-", "_").upper()
    parser.add_argument(option, type=convert, default=os.environ.get(env, default), metavar=metavar,
                        help=f"{help} (env {env}; default {default})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="eventstore_lite", description="EventStoreDB-compatible gRPC server on SQLite")
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 2113), metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:2113; elsewhere: no authentication, no TLS)")
    parser.add_argument("--db", required=True, metavar="PATH", help="SQLite database file")
    _limit(parser, "--max-append-size", _append_size, DEFAULT_MAX_APPEND_SIZE, "BYTES",
           "largest append or batch accepted, refused as soon as a call passes it (1 MiB, as the server)")
    _limit(parser, "--max-append-events", _count, DEFAULT_MAX_APPEND_EVENTS, "N",
           "most events in one append or batch, refused as soon as a call passes it (this store's own limit)")
    _limit(parser, "--max-subscriptions", _count, DEFAULT_MAX_SUBSCRIPTIONS, "N", "concurrent subscriptions")
    _limit(parser, "--max-calls", _count, DEFAULT_MAX_CALLS, "N", "concurrent calls other than subscriptions")
    _limit(parser, "--max-open-batches", _count, DEFAULT_MAX_OPEN_BATCHES, "N",
           "unfinished batches in one BatchAppend call")
    _limit(parser, "--workers", _count, DEFAULT_WORKERS, "N", "threads for SQLite work")
    _limit(parser, "--keepalive", _seconds, DEFAULT_KEEPALIVE_S, "SECONDS",
           "ping every connection this often; a peer silent for 10 s more is dropped")
    parser.add_argument("--trace", type=_trace_file, default=os.environ.get("EVENTSTORE_LITE_TRACE") or None,
                        metavar="PATH", help="append the append path's timings to this file, for benchmarks "
                        "(env EVENTSTORE_LITE_TRACE; default: off)")
    return parser.parse_args(argv)


def _check_bindable(host: str, port: int) -> None:
    """Fail early, with one line, if the address is taken (gRPC would log noise)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    host, port = args.listen
    try:
        _check_bindable(host, port)
    except OSError as exc:
        print(f"eventstore_lite: error: {exc}", file=sys.stderr)
        return 1
    server = EventStoreServer(
        args.db, host, port, max_append_size=args.max_append_size, max_workers=args.workers,
        max_subscriptions=args.max_subscriptions, max_calls=args.max_calls,
        max_open_batches=args.max_open_batches, max_append_events=args.max_append_events, keepalive_s=args.keepalive,
        trace_path=args.trace,
    )
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        print(f"eventstore_lite: error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("eventstore_lite listening on %s:%s (db %s)", host, server.port, args.db)
    while not stop.wait(3600):
        pass
    log.info("eventstore_lite stopping")
    server.stop(grace=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
