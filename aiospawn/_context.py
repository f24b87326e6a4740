"""What the spawning code needs from the running async library.

run() and open_process() are written once, against a Context: a watcher,
waiters (objects with asyncio Future's done/set_result/set_exception), a
wait bounded by a timeout, and a wait that cancellation cannot interrupt.
AsyncioContext serves asyncio and uvloop; TrioContext (_trio_glue.py)
serves trio, directly or under anyio.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._watcher import Watcher, watcher_for

_TIMED_OUT = object()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


class AsyncioContext:
    """The Context of a running asyncio (or uvloop) event loop."""

    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def watcher(self) -> Watcher:
        return watcher_for(self.loop)

    def new_waiter(self) -> asyncio.Future[Any]:
        return self.loop.create_future()

    async def wait(self, waiter: asyncio.Future[Any], timeout: float | None) -> bool:
        """Wait for waiter; return False if timeout seconds passed first.

        On timeout the waiter itself is completed, so it must not be reused.
        """
        if timeout is None:
            await waiter
            return True
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            result = await waiter
        finally:
            timer.cancel()
        return result is not _TIMED_OUT

    async def wait_shared(self, waiter: asyncio.Future[Any]) -> Any:
        """Wait for a waiter others may await too: cancelling this wait leaves it pending."""
        return await asyncio.shield(waiter)

    async def wait_shielded(
        self, waiter: asyncio.Future[Any], timeout: float | None = None
    ) -> tuple[bool, bool]:
        """Wait for waiter through any cancellation; return (completed, cancelled meanwhile)."""
        loop = self.loop
        bounded: asyncio.Future[bool] = loop.create_future()

        def finish(value: bool) -> None:
            if not bounded.done():
                bounded.set_result(value)

        if waiter.done():
            finish(True)
        else:
            waiter.add_done_callback(lambda _: finish(True))
        timer = None if timeout is None else loop.call_later(timeout, finish, False)
        cancelled = False
        try:
            while not bounded.done():
                try:
                    await asyncio.shield(bounded)
                except asyncio.CancelledError:
                    cancelled = True
        finally:
            if timer is not None:
                timer.cancel()
        return bounded.result(), cancelled

    @staticmethod
    def cancelled_error() -> BaseException:
        return asyncio.CancelledError()


def current_context() -> Any:
    """Return the Context of the running async library: asyncio, uvloop or trio."""
    try:
        return AsyncioContext(asyncio.get_running_loop())
    except RuntimeError:
        pass
    try:
        import sniffio

        library = sniffio.current_async_library()
    except Exception:
        library = None
    if library == "trio":
        from ._trio_glue import TrioContext

        return TrioContext()
    raise RuntimeError(
        "aiospawn needs a running asyncio, uvloop or trio event loop; "
        f"call it from a coroutine run by one of them (found: {library or 'none'})"
    )
