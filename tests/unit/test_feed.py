"""The reader-to-loop feed: order kept, bounded, an exception or the end handed over."""
from __future__ import annotations

import threading

from projections.projector.feed import EMPTY, END, Feed, pump


def test_items_arrive_in_order_then_end() -> None:
    feed = Feed(limit=3)
    thread = threading.Thread(target=pump, args=(range(10), feed))
    thread.start()
    got = []
    while (item := feed.get(1.0)) is not END:
        assert item is not EMPTY
        got.append(item)
    thread.join(1)
    assert got == list(range(10))


def test_empty_after_timeout_and_errors_are_items() -> None:
    feed = Feed(limit=3)
    assert feed.get(0.01) is EMPTY

    def broken():  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("socket closed")

    pump(broken(), feed)
    assert feed.get(0) == 1
    assert isinstance(feed.get(0), RuntimeError)


def test_a_full_feed_blocks_the_producer_until_closed() -> None:
    feed = Feed(limit=2)
    thread = threading.Thread(target=pump, args=(range(100), feed), daemon=True)
    thread.start()
    thread.join(0.1)
    assert thread.is_alive() and len(feed.items) == 2
    feed.close()
    thread.join(1)
    assert not thread.is_alive()
