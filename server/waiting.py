"""Waiting for an :class:`asyncio.Event` with a timeout, without losing a cancellation.

``asyncio.wait_for(event.wait(), timeout)`` on Python 3.11 returns normally when its task
is cancelled in the loop turns where the event is set: a loop of such waits (the server's
timer, the cluster's status announcer) then runs on, and whoever cancelled it and awaits
it waits forever. ``asyncio.timeout`` lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import contextlib


async def event_or_timeout(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set (True) or ``timeout`` seconds (None: no limit) have passed (False).

    >>> async def demo():
    ...     event = asyncio.Event()
    ...     asyncio.get_running_loop().call_soon(event.set)
    ...     return await event_or_timeout(event, 5.0), await event_or_timeout(asyncio.Event(), 0.01)
    >>> asyncio.run(demo())
    (True, False)
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            return await event.wait()
    return False
