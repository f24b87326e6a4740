"""The asyncio drop-in: create_subprocess_exec, create_subprocess_shell and Process."""

from __future__ import annotations

import asyncio
import asyncio.subprocess
import signal
from asyncio import streams
from typing import Any

from ._results import ResourceUsage
from ._transport import ExitStatusUnknown, check_loop_arguments, make_subprocess_transport

_DEFAULT_LIMIT: int = streams._DEFAULT_LIMIT  # type: ignore[attr-defined]  # 64 KiB, asyncio's own default


class Process(asyncio.subprocess.Process):
    """asyncio.subprocess.Process over an aiospawn child.

    Same attributes and methods (pid, returncode, stdin, stdout, stderr,
    wait, communicate, send_signal, terminate, kill). Signals go through the
    child's pidfd, so they never reach a process that reused its pid; after
    the exit they behave as asyncio's (ProcessLookupError once the
    transport has closed). A child started with kill_tree or cgroup gets
    them on its whole tree.
    """

    @property
    def rusage(self) -> ResourceUsage | None:
        """The child's resource usage once it has been reaped, else None."""
        return self._transport._child.rusage  # type: ignore[attr-defined,no-any-return]

    def kill_tree(self) -> None:
        """SIGKILL the child's whole tree: its cgroup, else the process group it leads.

        The child must have been started with kill_tree=True, cgroup=,
        start_new_session=True or process_group=0.
        """
        child = self._transport._child  # type: ignore[attr-defined]
        if child.cgroup is None and not child.leads_group:
            raise ValueError(
                "the child leads no process group and has no cgroup; start it with "
                "kill_tree=True, cgroup=True, start_new_session=True or process_group=0"
            )
        self._transport.signal_tree(signal.SIGKILL)  # type: ignore[attr-defined]

    @property
    def returncode(self) -> int | None:
        returncode = self._transport.get_returncode()  # type: ignore[attr-defined]
        if isinstance(returncode, ExitStatusUnknown):
            return None
        return returncode  # type: ignore[no-any-return]


async def subprocess_exec(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Any,
    program: Any,
    *args: Any,
    stdin: Any = -1,
    stdout: Any = -1,
    stderr: Any = -1,
    universal_newlines: bool = False,
    shell: bool = False,
    bufsize: int = 0,
    encoding: Any = None,
    errors: Any = None,
    text: Any = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """loop.subprocess_exec with an aiospawn child underneath."""
    check_loop_arguments(universal_newlines, shell, bufsize, encoding, errors, text, expect_shell=False)
    popen_args = (program, *args)
    protocol = protocol_factory()
    transport = await make_subprocess_transport(
        loop, protocol, popen_args, False, stdin, stdout, stderr, bufsize, **kwargs
    )
    return transport, protocol


async def subprocess_shell(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Any,
    cmd: Any,
    *,
    stdin: Any = -1,
    stdout: Any = -1,
    stderr: Any = -1,
    universal_newlines: bool = False,
    shell: bool = True,
    bufsize: int = 0,
    encoding: Any = None,
    errors: Any = None,
    text: Any = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """loop.subprocess_shell with an aiospawn child underneath."""
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("cmd must be a string")
    check_loop_arguments(universal_newlines, shell, bufsize, encoding, errors, text, expect_shell=True)
    protocol = protocol_factory()
    transport = await make_subprocess_transport(
        loop, protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs
    )
    return transport, protocol


async def create_subprocess_exec(
    program: Any,
    *args: Any,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    limit: int = _DEFAULT_LIMIT,
    **kwds: Any,
) -> Process:
    """Start program with args; the drop-in for asyncio.create_subprocess_exec.

    Keyword arguments are those of asyncio's (cwd, env, pass_fds,
    close_fds, start_new_session, process_group, restore_signals, umask,
    user, group, extra_groups, executable, ...). preexec_fn raises
    ValueError. An exec failure raises the OSError subclass subprocess
    raises, after the failed child has been reaped.
    """
    loop = asyncio.get_running_loop()

    def protocol_factory() -> asyncio.subprocess.SubprocessStreamProtocol:
        return asyncio.subprocess.SubprocessStreamProtocol(limit=limit, loop=loop)

    transport, protocol = await subprocess_exec(
        loop, protocol_factory, program, *args, stdin=stdin, stdout=stdout, stderr=stderr, **kwds
    )
    return Process(transport, protocol, loop)


async def create_subprocess_shell(
    cmd: Any,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    limit: int = _DEFAULT_LIMIT,
    **kwds: Any,
) -> Process:
    """Run cmd through /bin/sh; the drop-in for asyncio.create_subprocess_shell."""
    loop = asyncio.get_running_loop()

    def protocol_factory() -> asyncio.subprocess.SubprocessStreamProtocol:
        return asyncio.subprocess.SubprocessStreamProtocol(limit=limit, loop=loop)

    transport, protocol = await subprocess_shell(
        loop, protocol_factory, cmd, stdin=stdin, stdout=stdout, stderr=stderr, **kwds
    )
    return Process(transport, protocol, loop)
