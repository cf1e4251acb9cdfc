"""Benchmark of the embedded event store through esdbclient.

    python benchmarks/bench_eventstore.py [--events N | --quick]

Prints ONE JSON object to stdout (progress goes to stderr):
- ``append_events_per_s``: batched appends, 100 events a batch, one client;
- ``read_all_events_per_s``: ``read_all`` of everything through esdbclient;
- ``catchup_events_per_s``: catch-up ``subscribe_to_all`` from the start until the
  last appended event;
- ``ceiling_events_per_s``: the same ``read_all`` against a stub gRPC server in a
  separate process (``grpc.aio``, like the store) that streams prebuilt
  ``ReadResp`` messages (the transport's ceiling on this machine), measured before and after the store; the better run
  is used for the ratios;
- ratios of read and catch-up to the ceiling, and the server's RSS at the start,
  middle and end of the read (memory must stay flat).
The store runs as ``python -m eventstore_lite`` in its own process, like the stub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, AsyncIterator

import grpc
import psutil
from esdbclient import EventStoreDBClient, NewEvent, StreamState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 100
EVENTS_PER_STREAM = 1000


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


_TRADE = (
    '{{"tradeId":"t-{i}","userId":"user-{u}","pair":"BTC-USD","side":"{side}","amount":{amount},'
    '"price":{price},"amountUsd":32000.25,"exchange":"binance","executedAt":"2024-05-01T12:00:00.000Z"}}'
)


def trade_event(i: int, metadata: bytes = b'{"source":"bench"}') -> NewEvent:
    """A realistic ``TradeExecuted`` event (about 200 bytes of JSON)."""
    data = _TRADE.format(i=i, u=i % 977, side="buy" if i % 2 else "sell", amount=0.5 + i % 7, price=64000.5 + i % 100)
    return NewEvent(type="TradeExecuted", data=data.encode(), metadata=metadata)


# -- the stub server (transport ceiling) ----------------------------------------


def run_stub(port: int, count: int) -> None:
    """Serve ``Streams/Read`` streaming ``count`` prebuilt event messages."""
    sys.path.insert(0, ROOT)
    from esdbclient.protos.Grpc import streams_pb2

    from eventstore_lite import codec

    prebuilt = []
    for i in range(1000):
        event = trade_event(i)
        row = (i + 1, f"trades-user-{i}", i, str(event.id), event.type, event.content_type,
               time.time_ns() // 100, event.metadata, event.data)
        prebuilt.append(codec.read_resp_event(row))

    async def read(request: Any, context: Any) -> AsyncIterator[bytes]:
        for i in range(count):
            yield prebuilt[i % 1000]

    handler = grpc.method_handlers_generic_handler(
        "event_store.client.streams.Streams",
        {"Read": grpc.unary_stream_rpc_method_handler(
            read, request_deserializer=streams_pb2.ReadReq.FromString, response_serializer=lambda b: b)},
    )

    async def serve() -> None:  # grpc.aio, like the store: the cheapest serving Python has
        server = grpc.aio.server(handlers=[handler])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


def measure_ceiling(count: int) -> float:
    port = free_port()
    stub = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--stub", str(port), "--events", str(count)])
    try:
        wait_for_port(port)
        client = EventStoreDBClient(f"esdb://127.0.0.1:{port}?Tls=false")
        started = time.perf_counter()
        received = sum(1 for _ in client.read_all())
        elapsed = time.perf_counter() - started
        client.close()
        assert received == count, (received, count)
        return received / elapsed
    finally:
        stub.terminate()
        stub.wait()


# -- the store --------------------------------------------------------------------


def append_all(client: EventStoreDBClient, count: int) -> tuple[float, float, int]:
    """Append ``count`` events in batches; return (rate in calls, wall rate, last position).

    The first rate counts the time spent inside ``append_events`` (request building,
    the RPC, the durable commit); the wall rate also counts generating the payloads.
    """
    started = time.perf_counter()
    in_calls = 0.0
    last_position = 0
    for first in range(0, count, BATCH):
        metadata = json.dumps({"correlationId": str(uuid.uuid4()), "source": "bench"}).encode()
        events = [trade_event(i, metadata) for i in range(first, min(first + BATCH, count))]
        stream = f"trades-bench-{first // EVENTS_PER_STREAM}"
        offset = first % EVENTS_PER_STREAM
        version: int | StreamState = StreamState.NO_STREAM if offset == 0 else offset - 1
        call_started = time.perf_counter()
        last_position = client.append_events(stream, current_version=version, events=events)
        in_calls += time.perf_counter() - call_started
        if first and first % (BATCH * 500) == 0:
            progress(f"appended {first:,}")
    return count / in_calls, count / (time.perf_counter() - started), last_position


def read_all(client: EventStoreDBClient, server: psutil.Process, count: int) -> tuple[float, list[int]]:
    rss = [server.memory_info().rss]
    started = time.perf_counter()
    received = 0
    for _ in client.read_all():
        received += 1
        if received == count // 2:
            rss.append(server.memory_info().rss)
    elapsed = time.perf_counter() - started
    rss.append(server.memory_info().rss)
    assert received == count, (received, count)
    return received / elapsed, rss


def catch_up(client: EventStoreDBClient, last_position: int, count: int) -> float:
    started = time.perf_counter()
    received = 0
    subscription = client.subscribe_to_all()
    for event in subscription:
        received += 1
        if event.commit_position == last_position:
            break
    elapsed = time.perf_counter() - started
    subscription.stop()
    assert received == count, (received, count)
    return received / elapsed


def run(count: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="bench-eventstore-")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    store = subprocess.Popen(
        [sys.executable, "-m", "eventstore_lite", "--listen", f"127.0.0.1:{port}",
         "--db", os.path.join(workdir, "events.sqlite3")],
        env=env, stderr=subprocess.DEVNULL,
    )
    progress("transport ceiling (stub server), first measurement")
    ceilings = [measure_ceiling(count)]
    progress(f"ceiling: {ceilings[0]:,.0f} events/s")
    try:
        wait_for_port(port)
        client = EventStoreDBClient(f"esdb://127.0.0.1:{port}?Tls=false")
        progress(f"appending {count:,} events, {BATCH} a batch")
        append_rate, append_wall_rate, last_position = append_all(client, count)
        progress(f"append: {append_rate:,.0f} events/s; reading $all")
        read_rate, rss = read_all(client, psutil.Process(store.pid), count)
        progress(f"read_all: {read_rate:,.0f} events/s; catch-up subscription")
        catchup_rate = catch_up(client, last_position, count)
        progress(f"catch-up: {catchup_rate:,.0f} events/s; transport ceiling again")
        client.close()
    finally:
        store.terminate()
        store.wait()
    ceilings.append(measure_ceiling(count))
    progress(f"ceiling: {ceilings[1]:,.0f} events/s")
    ceiling = max(ceilings)  # the more favourable transport run: the stricter ratio
    mib = 1024 * 1024
    return {
        "events": count,
        "append_batch_size": BATCH,
        "append_events_per_s": round(append_rate),
        "append_wall_events_per_s": round(append_wall_rate),
        "read_all_events_per_s": round(read_rate),
        "catchup_events_per_s": round(catchup_rate),
        "ceiling_events_per_s": round(ceiling),
        "ceiling_runs_events_per_s": [round(c) for c in ceilings],
        "read_vs_ceiling": round(read_rate / ceiling, 3),
        "catchup_vs_ceiling": round(catchup_rate / ceiling, 3),
        "server_rss_mib_start_mid_end": [round(r / mib, 1) for r in rss],
        "server_rss_growth_mib": round((max(rss) - rss[0]) / mib, 1),
        "targets_met": {
            "append_10k": append_rate >= 10_000,
            "read_0_8": read_rate >= 0.8 * ceiling,
            "catchup_0_8": catchup_rate >= 0.8 * ceiling,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to append and read (default 1M)")
    parser.add_argument("--quick", action="store_true", help="50,000 events")
    parser.add_argument("--stub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    count = 50_000 if args.quick else args.events
    if args.stub:
        run_stub(args.stub, count)
        return
    print(json.dumps(run(count)))


if __name__ == "__main__":
    main()
