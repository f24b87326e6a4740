"""open_process: an anyio.abc.Process over an aiospawn child, for asyncio and trio.

The streams read and write the pipe fds directly, waiting with anyio's
wait_readable / wait_writable, so no asyncio.subprocess or trio process
machinery is involved on either backend.
"""

from __future__ import annotations

import errno
import os
import signal
import warnings
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from ._child import Child
from ._context import current_context
from ._options import prepare
from ._results import ResourceUsage
from ._spawn import spawn_with_stdio
from ._stdio import PIPE, Stdio, pty_index
from ._transport import PREEXEC_FN_MESSAGE

_DEFAULT_RECEIVE_SIZE = 65536


class PipeReceiveStream(anyio.abc.ByteReceiveStream):
    """The parent's read end of a child's stdout or stderr pipe."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def receive(self, max_bytes: int = _DEFAULT_RECEIVE_SIZE) -> bytes:
        if max_bytes < 1:
            raise ValueError(f"max_bytes={max_bytes} must be at least 1")
        while True:
            if self._fd < 0:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
                continue
            except OSError as error:
                if error.errno == errno.EIO:
                    # A pseudo-terminal master: the child side is closed.
                    raise anyio.EndOfStream from None
                raise anyio.BrokenResourceError from error
            if not data:
                raise anyio.EndOfStream
            await anyio.lowlevel.checkpoint()
            return data

    async def aclose(self) -> None:
        self.close()
        await anyio.lowlevel.checkpoint()

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            anyio.notify_closing(fd)
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed child pipe fd {self._fd}", ResourceWarning, stacklevel=1)
            os.close(self._fd)


class PipeSendStream(anyio.abc.ByteSendStream):
    """The parent's write end of a child's stdin pipe."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while True:
            if self._fd < 0:
                raise anyio.ClosedResourceError
            if not view:
                break
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            except OSError as error:
                # EPIPE: the child closed its stdin or exited.
                raise anyio.BrokenResourceError from error
            view = view[written:]
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.close()
        await anyio.lowlevel.checkpoint()

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            anyio.notify_closing(fd)
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed child pipe fd {self._fd}", ResourceWarning, stacklevel=1)
            os.close(self._fd)


class AnyioProcess(anyio.abc.Process):
    """A child started by aiospawn.open_process; implements anyio.abc.Process."""

    def __init__(self, child: Child, context: Any, streams: list[Any]) -> None:
        self._child = child
        self._context = context
        self._stdin: PipeSendStream | None = streams[0]
        self._stdout: PipeReceiveStream | None = streams[1]
        self._stderr: PipeReceiveStream | None = streams[2]

    async def wait(self) -> int:
        """Wait until the child has exited and return its return code."""
        child = self._child
        if not child.exited:
            await self._context.wait_shared(child.exit_waiter(self._context))
        else:
            await anyio.lowlevel.checkpoint()
        child.raise_for_failure()
        assert child.returncode is not None
        return child.returncode

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._child.kill()

    def send_signal(self, signal: signal.Signals) -> None:
        if self._child.kill_tree or self._child.cgroup is not None:
            self._child.signal_tree(signal)
        else:
            self._child.send_signal(signal)

    @property
    def rusage(self) -> ResourceUsage | None:
        """The child's resource usage once it has been reaped, else None."""
        return self._child.rusage

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    @property
    def stdin(self) -> anyio.abc.ByteSendStream | None:
        return self._stdin

    @property
    def stdout(self) -> anyio.abc.ByteReceiveStream | None:
        return self._stdout

    @property
    def stderr(self) -> anyio.abc.ByteReceiveStream | None:
        return self._stderr

    async def aclose(self) -> None:
        """Close the streams, then wait for the exit; if cancelled meanwhile, kill and reap."""
        with anyio.CancelScope(shield=True):
            for stream in (self._stdin, self._stdout, self._stderr):
                if stream is not None:
                    await stream.aclose()
        try:
            await self.wait()
        except BaseException:
            self.kill()
            with anyio.CancelScope(shield=True):
                await self._context.wait_shielded(self._child.exit_waiter(self._context))
            raise


async def open_process(
    command: Any,
    *,
    stdin: Any = PIPE,
    stdout: Any = PIPE,
    stderr: Any = PIPE,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    start_new_session: bool = False,
    process_group: int | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    restore_signals: bool = True,
    umask: int = -1,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    executable: Any = None,
    preexec_fn: Any = None,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> AnyioProcess:
    """Start a child and return it as an anyio.abc.Process, like anyio.open_process.

    A str or bytes command runs through the shell; a sequence runs
    directly. Works under asyncio, uvloop and trio, and under anyio on
    either backend. Returns once the child has exec'd: an exec failure
    raises the OSError subclass subprocess raises, after the reap.

    kill_tree, cgroup, rlimits, pdeathsig, pipesize and
    stdin/stdout/stderr=PTY with pty_size work as for aiospawn.run. With
    kill_tree or cgroup, kill() and terminate() reach the child's whole
    tree; the cgroup is removed once the child has exited and the cgroup
    is empty.
    """
    if preexec_fn is not None:
        raise ValueError(PREEXEC_FN_MESSAGE)
    shell = isinstance(command, (str, bytes))
    command_data, script, leads_group = prepare(
        command,
        executable=executable,
        shell=shell,
        env=env,
        cwd=cwd,
        close_fds=close_fds,
        pass_fds=pass_fds,
        start_new_session=start_new_session,
        process_group=process_group,
        umask=umask,
        restore_signals=restore_signals,
        user=user,
        group=group,
        extra_groups=extra_groups,
        rlimits=rlimits,
        pdeathsig=pdeathsig,
        kill_tree=kill_tree,
        pty_fd=pty_index(stdin, stdout, stderr),
    )
    context = current_context()
    watcher = context.watcher()

    stdio = Stdio(stdin, stdout, stderr, pipesize=pipesize, pty_size=pty_size)
    child, tree = spawn_with_stdio(
        watcher,
        command_data,
        script,
        command,
        stdio,
        cgroup,
        kill_tree=kill_tree,
        leads_group=leads_group,
        report_exec=True,
    )
    if tree is not None:
        child.on_exit(tree.remove_when_empty_later(watcher))

    streams: list[Any] = []
    for index, fd in enumerate(stdio.parent_fds):
        if fd is None:
            streams.append(None)
        elif index == 0:
            streams.append(PipeSendStream(fd))
        else:
            streams.append(PipeReceiveStream(fd))

    try:
        await child.wait_exec(context)
    except BaseException:
        for stream in streams:
            if stream is not None:
                stream.close()
        if not child.exited:
            child.kill()
            await context.wait_shielded(child.exit_waiter(context))
        child.close_status_fd()
        raise
    return AnyioProcess(child, context, streams)
