"""An asyncio SubprocessTransport whose child comes from aiospawn.

The transport subclasses asyncio's own BaseSubprocessTransport, so the
protocol sees pipe_data_received, pipe_connection_lost, process_exited
and connection_lost in exactly the order of the running Python version.
What changes is underneath: the child is created by the native core
instead of subprocess.Popen, its exit is observed through its pidfd by the
loop's watcher instead of a child watcher, and signals go through the
pidfd, so they can never reach a process that reused the pid.
"""

from __future__ import annotations

import asyncio
import subprocess
from asyncio import base_subprocess
from typing import Any

from ._child import Child
from ._command import build_script, command_for
from ._errors import ExitStatusUnknownError
from ._spawn import spawn
from ._stdio import Stdio
from ._watcher import watcher_for

PREEXEC_FN_MESSAGE = (
    "preexec_fn is not supported: aiospawn never runs Python code in the child. "
    "Use the declarative options instead: cwd, umask, start_new_session, "
    "process_group, user, group, extra_groups, pass_fds, close_fds and restore_signals"
)


class ChildHandle:
    """The Popen-like object asyncio keeps as the transport's "subprocess" extra."""

    __slots__ = ("args", "stdin", "stdout", "stderr", "_child")

    def __init__(self, child: Child, args: Any, files: list[Any]) -> None:
        self.args = args
        self.stdin, self.stdout, self.stderr = files
        self._child = child

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    @returncode.setter
    def returncode(self, value: int | None) -> None:
        # asyncio copies the status it observed into its Popen object; the
        # child already has it, from its own reap.
        pass

    def poll(self) -> int | None:
        """Return the return code, or None while the child runs; never blocks."""
        return self._child.returncode

    def send_signal(self, signal_number: int) -> None:
        self._child.send_signal(signal_number)

    def terminate(self) -> None:
        import signal

        self._child.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._child.kill()


class SubprocessTransport(base_subprocess.BaseSubprocessTransport):  # type: ignore[misc]
    """asyncio's subprocess transport over an aiospawn child."""

    _child: Child

    def _start(  # type: ignore[override]
        self,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        *,
        cwd: Any = None,
        env: Any = None,
        executable: Any = None,
        pass_fds: Any = (),
        close_fds: bool = True,
        start_new_session: bool = False,
        process_group: int | None = None,
        restore_signals: bool = True,
        umask: int = -1,
        user: Any = None,
        group: Any = None,
        extra_groups: Any = None,
        preexec_fn: Any = None,
        pipesize: int = -1,
    ) -> None:
        if preexec_fn is not None:
            raise ValueError(PREEXEC_FN_MESSAGE)
        command = command_for(args, executable, shell, env)
        script = build_script(
            cwd, close_fds, pass_fds, start_new_session, process_group, umask,
            restore_signals, user, group, extra_groups,
        )
        loop = self._loop
        watcher = watcher_for(loop)

        stdio = Stdio(stdin, stdout, stderr, pipesize=pipesize, blocking_parent=True)
        try:
            child = spawn(watcher, command, script, tuple(stdio.child_fds), args, report_exec=True)  # type: ignore[arg-type]
        except BaseException:
            stdio.close_parent_ends()
            raise
        finally:
            stdio.close_child_ends()

        # From here the parent's pipe ends belong to these file objects,
        # which asyncio's pipe transports close.
        files = [
            None if fd is None else open(fd, mode, buffering=0)
            for fd, mode in zip(stdio.parent_fds, ("wb", "rb", "rb"))
        ]
        self._child = child
        self._proc = ChildHandle(child, args, files)
        child.on_exit(self._on_child_exit)

    def _on_child_exit(self) -> None:
        child = self._child
        if child.returncode is None:
            # The status was collected by someone else: report that from wait().
            self._status_unknown = True
            self._process_exited(ExitStatusUnknown())
        else:
            self._process_exited(child.returncode)

    async def _connect_pipes(self, waiter: asyncio.Future[None] | None) -> None:
        try:
            await self._child.wait_exec(self._loop)
        except BaseException as error:
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(error)
            return
        await super()._connect_pipes(waiter)

    async def _wait(self) -> int:
        returncode = await super()._wait()
        if isinstance(returncode, ExitStatusUnknown):
            raise ExitStatusUnknownError(self._child.pid, self._proc.args if self._proc else None)
        return returncode  # type: ignore[no-any-return]

    def close(self) -> None:
        if getattr(self, "_child", None) is not None:
            self._child.close_status_fd()
        super().close()
        # Pipes never handed to a pipe transport (the exec failed, or the
        # transport closed before connecting them) are closed here.
        handle = self._proc if isinstance(self._proc, ChildHandle) else None
        if handle is not None:
            for index, pipe in enumerate((handle.stdin, handle.stdout, handle.stderr)):
                if pipe is not None and self._pipes.get(index) is None:
                    pipe.close()

    # Signals go through the pidfd: after the reap they do nothing, like
    # asyncio ignoring ProcessLookupError, and can never hit a reused pid.

    def send_signal(self, signal_number: int) -> None:
        self._check_proc()
        self._child.send_signal(signal_number)

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


class ExitStatusUnknown(int):
    """Stands in for a return code that another waiter collected first."""

    def __new__(cls) -> ExitStatusUnknown:
        return super().__new__(cls, -1)

    def __repr__(self) -> str:
        return "<exit status unknown>"


async def make_subprocess_transport(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.SubprocessProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    bufsize: int,
    extra: Any = None,
    **kwargs: Any,
) -> SubprocessTransport:
    """Start a child and return its transport once it has exec'd and its pipes are connected."""
    waiter = loop.create_future()
    transport = SubprocessTransport(
        loop, protocol, args, shell, stdin, stdout, stderr, bufsize, waiter=waiter, extra=extra, **kwargs
    )
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transport.close()
        await _wait_quietly(transport)
        raise
    return transport


async def _wait_quietly(transport: SubprocessTransport) -> None:
    try:
        await transport._wait()
    except ExitStatusUnknownError:
        pass


def check_loop_arguments(
    universal_newlines: bool, shell: bool, bufsize: int, encoding: Any, errors: Any, text: Any,
    expect_shell: bool,
) -> None:
    """Reject the options asyncio's loop rejects, with its messages."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if shell != expect_shell:
        raise ValueError("shell must be True" if expect_shell else "shell must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


__all__ = ["SubprocessTransport", "make_subprocess_transport", "subprocess"]
