"""Running aiospawn under trio: a watcher served by a system task, and trio waiters.

The watcher of a trio run is created on first use and lives until the run
ends. A system task blocks in trio's wait_readable on its fd and dispatches
events, so waiting for children under trio also needs no thread and no
SIGCHLD handler.
"""

from __future__ import annotations

from typing import Any

import trio

from ._watcher import Watcher

_run_watcher: trio.lowlevel.RunVar[TrioWatcher | None] = trio.lowlevel.RunVar(
    "aiospawn_watcher", default=None
)


class TrioWatcher(Watcher):
    """A watcher whose fd is awaited by a trio system task."""

    def __init__(self) -> None:
        super().__init__()
        trio.lowlevel.spawn_system_task(self._serve, name="aiospawn watcher")

    async def _serve(self) -> None:
        try:
            while not self.closed:
                await trio.lowlevel.wait_readable(self.fd)
                self.dispatch()
        finally:
            # The run is ending: children still running are reaped by a
            # thread as they exit.
            self.detach()


class TrioWaiter:
    """A one-shot completion with the subset of asyncio.Future that aiospawn uses."""

    __slots__ = ("_event", "_value", "_error")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def set_exception(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    async def wait(self) -> Any:
        await self._event.wait()
        return self.result()


class TrioContext:
    """The Context of a running trio event loop; see _context.py."""

    __slots__ = ()

    def watcher(self) -> Watcher:
        watcher = _run_watcher.get()
        if watcher is None or watcher.closed:
            watcher = TrioWatcher()
            _run_watcher.set(watcher)
        return watcher

    def new_waiter(self) -> TrioWaiter:
        return TrioWaiter()

    async def wait(self, waiter: TrioWaiter, timeout: float | None) -> bool:
        """Wait for waiter; return False if timeout seconds passed first."""
        if timeout is None:
            await waiter.wait()
            return True
        with trio.move_on_after(timeout):
            await waiter.wait()
            return True
        return False

    async def wait_shared(self, waiter: TrioWaiter) -> Any:
        """Wait for a waiter others may await too."""
        return await waiter.wait()

    async def wait_shielded(self, waiter: TrioWaiter, timeout: float | None = None) -> tuple[bool, bool]:
        """Wait for waiter, shielded from cancellation; return (completed, False).

        trio delivers a cancellation that arrived meanwhile at the next
        checkpoint after the shield, so nothing needs to be re-raised here.
        """
        with trio.CancelScope(shield=True):
            if timeout is None:
                await waiter.wait()
                return True, False
            with trio.move_on_after(timeout):
                await waiter.wait()
                return True, False
        return False, False

    @staticmethod
    def cancelled_error() -> BaseException:
        raise RuntimeError("trio re-delivers cancellation by itself")
