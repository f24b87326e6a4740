"""The handle of one spawned child: its pidfd, its exit and its signals."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from typing import Any

from ._core import lib
from ._errors import ExitStatusUnknownError, child_failure
from ._results import ResourceUsage
from ._watcher import Watcher


class Child:
    """A running or exited child, owned by exactly one watcher until reaped.

    The watcher reaps the child as soon as its pidfd becomes readable and
    closes the pidfd; from then on ``returncode`` is set and signals are
    no-ops, so a signal can never reach a process that reused the pid.
    """

    __slots__ = (
        "pid",
        "args",
        "returncode",
        "_usage",
        "kill_tree",
        "leads_group",
        "cgroup",
        "_pidfd",
        "_watcher",
        "_token",
        "_command",
        "_script",
        "_request",
        "_slot",
        "_release_slot",
        "_failure",
        "_status_error",
        "_exit_future",
        "_exit_callbacks",
        "_status_fd",
        "_orphan_lock",
    )

    def __init__(self, watcher: Watcher, command: Any, script: Any, request: Any, args: Any) -> None:
        self.pid = -1
        self.args = args
        self.returncode: int | None = None
        self._usage: tuple[int, ...] | None = None
        self.kill_tree = False
        self.leads_group = False
        self.cgroup: Any = None
        self._pidfd = -1
        self._watcher = watcher
        self._token = watcher.new_token(self._on_exit)
        self._command = command
        self._script = script
        self._request = request
        self._slot: Any = None
        self._release_slot: Callable[[Any], None] | None = None
        self._failure: tuple[int, int, int] | None = None
        self._status_error = 0
        self._exit_future: Any = None
        self._exit_callbacks: list[Callable[[], None]] = []
        self._status_fd = -1
        # Set when the orphan reaper thread adopts the child (_orphans.py).
        self._orphan_lock: Any = None

    @property
    def rusage(self) -> ResourceUsage | None:
        """The resource usage collected with the exit status, or None before the reap."""
        if self._usage is None:
            return None
        return ResourceUsage.from_event_fields(self._usage)

    # -- exit -------------------------------------------------------------

    def _on_exit(self, event: Any) -> None:
        self._pidfd = -1
        self.pid = event.pid or self.pid
        if event.error:
            self._status_error = event.error
        else:
            self.returncode = event.returncode
            if event.has_rusage:
                self._usage = (
                    event.utime_us,
                    event.stime_us,
                    event.maxrss_kb,
                    event.minflt,
                    event.majflt,
                    event.nvcsw,
                    event.nivcsw,
                )
        if self._slot is not None:
            slot = self._slot
            if slot.failed_step != lib.AIOSPAWN_FAILED_NONE:
                self._failure = (slot.failed_step, slot.failed_errno, slot.failed_path)
            self._give_back_slot()
        self._request = None
        if not self._watcher.closed:
            self._watcher.release_token(self._token)

        if self._exit_future is not None and not self._exit_future.done():
            self._exit_future.set_result(0)
        callbacks, self._exit_callbacks = self._exit_callbacks, []
        for callback in callbacks:
            callback()

    def record_orphan_exit(self, event: Any) -> None:
        """Record the exit without waking anyone: the loop of the waiters is closed."""
        self._exit_future = None
        self._exit_callbacks = []
        self._on_exit(event)

    def _give_back_slot(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None and self._release_slot is not None:
            self._release_slot(slot)

    @property
    def exited(self) -> bool:
        """True once the child has been reaped (or its status found lost)."""
        return self._pidfd < 0 and self.pid > 0

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Call callback once, when the child has been reaped (now, if it already is)."""
        if self.exited:
            callback()
        else:
            self._exit_callbacks.append(callback)

    def exit_waiter(self, context: Any) -> Any:
        """Return a waiter of context that completes when the child has been reaped."""
        if self._exit_future is None:
            self._exit_future = context.new_waiter()
            if self.exited:
                self._exit_future.set_result(0)
        return self._exit_future

    def raise_for_failure(self) -> None:
        """Raise what the child failed with before exec, or a lost status."""
        if self._failure is not None:
            step, error_number, _ = self._failure
            script = self._script
            command = self._command
            if step == lib.AIOSPAWN_FAILED_EXEC:
                raise child_failure(error_number, "exec", command.program, True)
            if step == lib.AIOSPAWN_FAILED_STDIO:
                raise child_failure(error_number, "redirecting stdin, stdout or stderr", None, False)
            raise child_failure(error_number, script.descriptions[step], script.filenames[step], False)
        if self._status_error:
            if self._status_error == errno.ECHILD:
                raise ExitStatusUnknownError(self.pid, self.args)
            raise OSError(
                self._status_error, f"reaping pid {self.pid} failed: {os.strerror(self._status_error)}"
            )

    async def wait_exec(self, context: Any) -> None:
        """Return once the child has exec'd; raise its failure if it could not.

        context is a Context (see _context.py) or an asyncio loop. A failed
        child is reaped before the exception leaves.
        """
        if not hasattr(context, "new_waiter"):
            from ._context import AsyncioContext

            context = AsyncioContext(context)
        if self._status_fd >= 0:
            await self._wait_status_eof(context)
        if self._failure is None and self._slot is not None:
            slot = self._slot
            if slot.failed_step != lib.AIOSPAWN_FAILED_NONE:
                self._failure = (slot.failed_step, slot.failed_errno, slot.failed_path)
            elif slot.busy == 0:
                # Exec'd: the child no longer uses its stack.
                self._give_back_slot()
        if self._failure is not None:
            await context.wait_shielded(self.exit_waiter(context))
            self.raise_for_failure()

    async def _wait_status_eof(self, context: Any) -> None:
        # EOF comes at exec, where the kernel closes the close-on-exec write
        # end, or at exit. The slot's error record shows which of the two.
        fd = self._status_fd
        eof = context.new_waiter()

        def on_readable(event: Any) -> None:
            if not eof.done():
                eof.set_result(None)

        token = self._watcher.watch_fd(fd, 0x001, on_readable)
        try:
            await context.wait(eof, None)
        finally:
            self._status_fd = -1
            self._watcher.unwatch_fd(fd, token)
            os.close(fd)

    def close_status_fd(self) -> None:
        """Close the status pipe if wait_exec() was never awaited."""
        if self._status_fd >= 0:
            fd, self._status_fd = self._status_fd, -1
            os.close(fd)

    # -- signals ----------------------------------------------------------

    def send_signal(self, signal_number: int, process_group: bool = False) -> None:
        """Send a signal through the pidfd; do nothing once the child is reaped.

        With process_group, signal the process group the child leads, so
        its descendants get it too. Its pgid cannot have been reused: the
        child, not yet reaped, still holds it. For that reason members left
        behind after the child has been reaped are not signalled; a cgroup
        (cgroup=) reaches them.
        """
        lock = self._orphan_lock
        if lock is None:
            self._signal(signal_number, process_group)
            return
        # The reaper thread closes the pidfd when it reaps: without the
        # lock, another thread could reuse the number before the signal.
        with lock:
            self._signal(signal_number, process_group)

    def _signal(self, signal_number: int, process_group: bool) -> None:
        if self._pidfd < 0:
            return
        if process_group:
            try:
                os.killpg(self.pid, signal_number)
            except ProcessLookupError:
                pass
            return
        result = lib.aiospawn_pidfd_send_signal(self._pidfd, int(signal_number))
        if result < 0 and result != -errno.ESRCH:
            raise OSError(-result, f"signalling pid {self.pid} failed: {os.strerror(-result)}")

    def kill(self) -> None:
        """Send SIGKILL: to the whole tree when the child was started with kill_tree or a cgroup."""
        if self.kill_tree or self.cgroup is not None:
            self.signal_tree(signal.SIGKILL)
        else:
            self.send_signal(signal.SIGKILL)

    def signal_tree(self, signal_number: int) -> None:
        """Signal the child and its descendants: its cgroup, else its process group.

        cgroup.kill reaches descendants that left the process group (a
        daemon calling setsid), even after the child itself has exited.
        """
        if self.cgroup is not None and signal_number == signal.SIGKILL:
            self.cgroup.kill()
            return
        if self.cgroup is not None:
            self.cgroup.signal_all(signal_number)
            return
        self.send_signal(signal_number, process_group=True)
