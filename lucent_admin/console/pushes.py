"""Rendering widgets for live pushes: coalesced per socket, shared across sockets.

A change notice marks the widgets that depend on its projection dirty; a socket
sends a dirty widget at most every FLUSH_INTERVAL seconds, however many notices
arrive. A widget rendered for one version of the read models (the last
checkpoint seen of each projection it depends on) is rendered once per process
and the HTML shared by every socket showing it.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping

from asgiref.sync import sync_to_async

from lucent_admin.console.widgets import Widget, render_widget

FLUSH_INTERVAL = 0.25  # per widget: at most four renders a second, however many notices
GATHER_WINDOW = 0.02  # wait this long after a first notice for its siblings from other projections
CACHE_SIZE = 512

Version = tuple[int, ...]
CacheKey = tuple[str, tuple[tuple[str, str], ...], Version]

# HTML of a finished render, or the future of one in flight (awaited by the other sockets).
_cache: OrderedDict[CacheKey, str | asyncio.Future[str]] = OrderedDict()


def version_of(widget: Widget, checkpoints: Mapping[str, int]) -> Version:
    return tuple(checkpoints.get(p, -1) for p in widget.projections)


async def _render(widget: Widget, params: Mapping[str, str]) -> str:
    return await sync_to_async(render_widget, thread_sensitive=False)(widget, params, oob=True)


async def render_shared(widget: Widget, params: Mapping[str, str], version: Version | None) -> str:
    """The widget's HTML (as an out-of-band swap) for ``version``; rendered once per process.

    ``version`` None means "no notice seen yet" (a socket's first render): always fresh.
    """
    if version is None:
        return await _render(widget, params)
    key: CacheKey = (widget.name, tuple(sorted(params.items())), version)
    cached = _cache.get(key)
    if isinstance(cached, str):
        return cached
    if cached is not None:
        return await asyncio.shield(cached)
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    _cache[key] = future
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    try:
        html = await _render(widget, params)
    except Exception as exc:
        _cache.pop(key, None)
        future.set_exception(exc)
        future.exception()  # retrieved: the sockets awaiting it see it; nobody else must
        raise
    _cache[key] = html
    future.set_result(html)
    return html
