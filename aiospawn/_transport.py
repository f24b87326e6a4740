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
import errno
import os
import select
import signal
import subprocess
import time
from asyncio import base_subprocess
from typing import Any

from ._child import Child
from ._errors import ExitStatusUnknownError
from ._options import prepare
from ._spawn import spawn_with_stdio
from ._stdio import PTY, Stdio, pty_index
from ._watcher import watcher_for

PREEXEC_FN_MESSAGE = (
    "preexec_fn is not supported: aiospawn never runs Python code in the child. "
    "Use the declarative options instead: cwd, umask, start_new_session, "
    "process_group, user, group, extra_groups, pass_fds, close_fds and restore_signals"
)


# waitid flag: aiospawn's children have no exit signal, so they are "clone"
# children, which waitid reports only with __WALL.
_WALL = 0x40000000


class ChildHandle:
    """The Popen-like object asyncio keeps as the transport's "subprocess" extra.

    Like a Popen object it accepts new attributes (code that wraps its
    methods assigns them), and poll() and wait() see the child's exit as
    soon as the kernel has it, even before the loop's watcher has reaped
    it. They read the status without reaping (WNOWAIT), so the watcher
    still reaps the child and reports the exit to the transport from the
    loop, as asyncio's child watchers do after a Popen.wait().
    """

    __slots__ = ("args", "stdin", "stdout", "stderr", "_child", "_seen_returncode", "__dict__")

    def __init__(self, child: Child, args: Any, files: list[Any]) -> None:
        self.args = args
        self.stdin, self.stdout, self.stderr = files
        self._child = child
        self._seen_returncode: int | None = None

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        returncode = self._child.returncode
        return self._seen_returncode if returncode is None else returncode

    @returncode.setter
    def returncode(self, value: int | None) -> None:
        # asyncio copies the status it observed into its Popen object; the
        # child already has it, from its own reap.
        pass

    def poll(self) -> int | None:
        """Return the return code, or None while the child runs, without blocking."""
        return self._peek(block=False, timeout=None)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child exits and return its return code, like Popen.wait().

        This blocks the calling thread, and with it the event loop if that
        is where it is called. In a coroutine, await the Process's wait().
        Raises subprocess.TimeoutExpired after timeout seconds.
        """
        returncode = self._peek(block=True, timeout=timeout)
        if returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
        return returncode

    def _peek(self, block: bool, timeout: float | None) -> int | None:
        returncode = self.returncode
        if returncode is not None:
            return returncode
        if self._child._orphan_lock is not None:
            return self._peek_orphan(block, timeout)
        return self._look(block, timeout)

    def _look(self, block: bool, timeout: float | None) -> int | None:
        """Read the exit status from the pidfd without reaping; None while running."""
        pidfd = self._child._pidfd
        if pidfd < 0:
            # Reaped meanwhile (returncode is set) or the status was lost.
            return self._child.returncode
        if block:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
                return None
        try:
            info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT | _WALL)
        except OSError:
            # The watcher reaped the child and closed its pidfd meanwhile.
            return self._child.returncode
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            self._seen_returncode = info.si_status
        else:
            self._seen_returncode = -info.si_status
        return self._seen_returncode

    def _peek_orphan(self, block: bool, timeout: float | None) -> int | None:
        """_peek for a child of a closed loop, whose pidfd the reaper thread closes.

        Each look holds the reaper's lock, so the pidfd stays the child's
        during it. Blocking here means looking again every 10 ms: the
        reaper thread, not this one, waits on the pidfd.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._child._orphan_lock:
                returncode = self.returncode
                if returncode is None:
                    returncode = self._look(block=False, timeout=None)
            if returncode is not None or not block or self._child.exited:
                return returncode
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def send_signal(self, signal_number: int) -> None:
        self._child.send_signal(signal_number)

    def terminate(self) -> None:
        self._child.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._child.kill()


# How far _connect_pipes has got.
_NOT_STARTED, _CONNECTING, _CONNECTED = 0, 1, 2


class SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """asyncio's subprocess transport over an aiospawn child."""

    _child: Child
    _connect_state = 0  # _NOT_STARTED, _CONNECTING or _CONNECTED

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
        startupinfo: Any = None,
        creationflags: int = 0,
        kill_tree: bool = False,
        cgroup: bool | str | None = None,
        rlimits: Any = None,
        pdeathsig: int | None = None,
        pty_size: tuple[int, int] | None = None,
    ) -> None:
        if preexec_fn is not None:
            raise ValueError(PREEXEC_FN_MESSAGE)
        # subprocess.Popen accepts the Windows-only options on Linux as long
        # as they keep their defaults, and asyncio passes them through.
        if startupinfo is not None:
            raise ValueError("startupinfo is only supported on Windows platforms")
        if creationflags != 0:
            raise ValueError("creationflags is only supported on Windows platforms")
        on_uvloop = type(self._loop).__module__.startswith("uvloop")
        if PTY in (stdin, stdout, stderr) and on_uvloop:
            # uvloop's write transport also reads its fd to notice a closed
            # peer, which on a terminal master swallows the child's output,
            # and its read transport was seen to wait forever for the end of
            # a terminal (uvloop 0.23, Python 3.13).
            raise ValueError(
                "aiospawn.PTY is not supported by create_subprocess_exec on uvloop; "
                "use it on asyncio's own loop, or aiospawn.open_process / aiospawn.run"
            )
        pty_fd = pty_index(stdin, stdout, stderr)
        self._pty_streams = {index for index, option in enumerate((stdin, stdout, stderr)) if option is PTY}
        command, script, leads_group = prepare(
            args,
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
            pty_fd=pty_fd,
            kill_tree=kill_tree,
        )
        loop = self._loop
        watcher = watcher_for(loop)

        stdio = Stdio(stdin, stdout, stderr, pipesize=pipesize, blocking_parent=True, pty_size=pty_size)
        child, tree = spawn_with_stdio(
            watcher,
            command,
            script,
            args,
            stdio,
            cgroup,
            kill_tree=kill_tree,
            leads_group=leads_group,
            report_exec=True,
        )
        if tree is not None:
            child.on_exit(tree.remove_when_empty_later(watcher))

        # From here the parent's pipe ends belong to these file objects,
        # which asyncio's pipe transports close (or _connect_pipes, on failure).
        # uvloop's pipe transports hand the fd itself to libuv, which closes
        # it, and then close the file object too. That second close can hit
        # an fd another thread opened in between, so on uvloop the files do
        # not own their fds and libuv alone closes them (uvloop 0.23).
        self._files_own_fds = not on_uvloop
        files = [
            None if fd is None else open(fd, mode, buffering=0, closefd=self._files_own_fds)  # noqa: SIM115
            for fd, mode in zip(stdio.parent_fds, ("wb", "rb", "rb"), strict=True)
        ]
        self._child = child
        # asyncio types _proc as a Popen; ChildHandle has the part of its API that asyncio uses.
        self._proc = ChildHandle(child, args, files)  # type: ignore[assignment]
        child.on_exit(self._on_child_exit)

    def _process_exited(self, returncode: int) -> None:
        if getattr(self, "_exec_failed", False):
            self._returncode = returncode
            self._wake_exit_waiters()
            return
        super()._process_exited(returncode)

    def _wake_exit_waiters(self) -> None:
        if self._returncode is None:
            return
        waiters, self._exit_waiters = self._exit_waiters or [], []
        for waiter in waiters:
            if not waiter.cancelled():
                waiter.set_result(self._returncode)

    def _pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        # A pseudo-terminal master reports EIO once the child side is
        # closed: that is its end of file, not an error.
        if fd in getattr(self, "_pty_streams", ()) and isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super()._pipe_connection_lost(fd, exc)

    def _on_child_exit(self) -> None:
        child = self._child
        if child.returncode is None:
            # The status was collected by someone else: report that from wait().
            self._status_unknown = True
            self._process_exited(ExitStatusUnknown())
        else:
            self._process_exited(child.returncode)

    async def _connect_pipes(self, waiter: asyncio.Future[None] | None) -> None:
        # Once this has started, it owns the status pipe (wait_exec closes
        # it) and the parent's pipe ends (connected below, or closed on
        # failure), so close() must leave them alone. asyncio connects the
        # pipes even of a transport closed meanwhile. Until every pipe is
        # connected and then lost, the protocol's pending calls are not
        # delivered and wait() does not return.
        self._connect_state = _CONNECTING
        try:
            try:
                await self._child.wait_exec(self._loop)
            except BaseException as error:
                self._close_unconnected_pipes()
                # The protocol was never connected, so it gets no callbacks:
                # the exit only wakes _wait(), which the caller awaits while
                # cleaning up (see _process_exited).
                self._exec_failed = True
                self._pipes = {}
                self._wake_exit_waiters()
                if waiter is not None and not waiter.cancelled():
                    waiter.set_exception(error)
                return
            await super()._connect_pipes(waiter)
        finally:
            self._connect_state = _CONNECTED

    def _close_unconnected_pipes(self) -> None:
        """Close the parent's pipe ends that no pipe transport took over."""
        handle = self._proc if isinstance(self._proc, ChildHandle) else None
        if handle is not None:
            for index, pipe in enumerate((handle.stdin, handle.stdout, handle.stderr)):
                if pipe is not None and self._pipes.get(index) is None and not pipe.closed:
                    if not self._files_own_fds:
                        os.close(pipe.fileno())
                    pipe.close()

    async def _wait(self) -> int:
        returncode = await super()._wait()
        if isinstance(returncode, ExitStatusUnknown):
            raise ExitStatusUnknownError(self._child.pid, self._proc.args if self._proc else None)
        return returncode

    def close(self) -> None:
        if getattr(self, "_child", None) is not None and self._connect_state == _NOT_STARTED:
            # _connect_pipes may never run because its loop closed first,
            # and then nothing else would close the status pipe.
            self._child.close_status_fd()
        if self._loop is not None and self._loop.is_closed():
            self._close_without_loop()
            return
        super().close()
        if self._connect_state == _CONNECTED:
            # A pipe that _connect_pipes failed to connect stays ours to close.
            self._close_unconnected_pipes()

    def _close_without_loop(self) -> None:
        """Close as asyncio's close() does, minus the callbacks a closed loop rejects.

        asyncio's pipe transports schedule connection_lost with call_soon,
        which raises once the loop is closed. A transport collected after
        its loop (say, of a thread that ended without awaiting its child)
        would print that error, and the pipe fds would wait for the pipe
        transports' finalizers. Their files are closed here instead. The
        child is not killed: the orphan reaper owns it since its loop
        closed (see _watcher.py) and reaps it whenever it exits.
        """
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            pipe_transport = getattr(proto, "pipe", None)  # a pipe protocol's transport
            if pipe_transport is not None:
                pipe_file = pipe_transport.get_extra_info("pipe")
                if pipe_file is not None:
                    pipe_file.close()
        self._close_unconnected_pipes()

    # Signals go through the pidfd: after the reap they do nothing, like
    # asyncio ignoring ProcessLookupError, and can never hit a reused pid.

    def send_signal(self, signal_number: int) -> None:
        self._check_proc()
        child = self._child
        if child.kill_tree or child.cgroup is not None:
            child.signal_tree(signal_number)
        else:
            child.send_signal(signal_number)

    def signal_tree(self, signal_number: int) -> None:
        """Signal the child's cgroup, else its process group; see Child.signal_tree."""
        self._check_proc()
        self._child.signal_tree(signal_number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
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
    universal_newlines: bool,
    shell: bool,
    bufsize: int,
    encoding: Any,
    errors: Any,
    text: Any,
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
