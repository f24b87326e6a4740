"""``aiospawn.run``: the async counterpart of ``subprocess.run``."""

from __future__ import annotations

import locale
import subprocess
from collections.abc import Mapping
from typing import Any, Literal, overload

from ._cgroup import Cgroup
from ._child import Child
from ._communicate import Communication
from ._context import current_context
from ._options import prepare
from ._results import CompletedProcess
from ._spawn import spawn_with_stdio
from ._stdio import PIPE, Stdio, pty_index
from ._termination import KILL, Termination, stop_child

_PREEXEC_MESSAGE = (
    "preexec_fn is not supported: aiospawn never runs Python code in the child. "
    "Use the declarative options instead: cwd, umask, start_new_session, "
    "process_group, user, group, extra_groups, pass_fds, close_fds and restore_signals"
)


# The overloads give run() the return type subprocess.run has in typeshed:
# CompletedProcess[str] when text, encoding, errors or universal_newlines
# selects text mode, CompletedProcess[bytes] when none does, and
# CompletedProcess[Any] when that is only known at run time (text=flag).
@overload
async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: Literal[True],
    encoding: str | None = None,
    errors: str | None = None,
    universal_newlines: bool | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[str]: ...


@overload
async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: bool | None = None,
    encoding: str,
    errors: str | None = None,
    universal_newlines: bool | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[str]: ...


@overload
async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: bool | None = None,
    encoding: str | None = None,
    errors: str,
    universal_newlines: bool | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[str]: ...


@overload
async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: bool | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    universal_newlines: Literal[True],
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[str]: ...


@overload
async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: Literal[False] | None = None,
    encoding: None = None,
    errors: None = None,
    universal_newlines: Literal[False] | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[bytes]: ...


@overload
async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: bool | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    universal_newlines: bool | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[Any]: ...


async def run(
    args: Any,
    *,
    stdin: Any = None,
    input: bytes | str | None = None,
    stdout: Any = None,
    stderr: Any = None,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    cwd: Any = None,
    env: Mapping[Any, Any] | None = None,
    text: bool | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    universal_newlines: bool | None = None,
    pass_fds: Any = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    shell: bool = False,
    executable: Any = None,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    preexec_fn: Any = None,
    termination: Termination = KILL,
    kill_tree: bool = False,
    cgroup: bool | str | None = None,
    rlimits: Mapping[Any, Any] | None = None,
    pdeathsig: int | None = None,
    pty_size: tuple[int, int] | None = None,
    pipesize: int = -1,
) -> CompletedProcess[Any]:
    """Run a command, wait for it, and return an aiospawn.CompletedProcess.

    The result is a ``subprocess.CompletedProcess`` that also carries the
    child's resource usage (``rusage``).

    The options mean what they mean for ``subprocess.run``. With ``check``,
    a non-zero exit raises ``subprocess.CalledProcessError``. When
    ``timeout`` seconds pass, the child is killed and reaped, then
    ``subprocess.TimeoutExpired`` is raised with the output read so far.
    If the awaiting task is cancelled, the child is killed and reaped before
    the cancellation propagates. ``termination`` (an aiospawn.Termination)
    replaces that kill with a signal, a grace period and a kill, optionally
    for the child's whole process group. Failures before exec raise the
    OSError subclass that ``subprocess`` raises, after the child has been
    reaped. Works under asyncio, uvloop and trio (also through anyio).

    Beyond subprocess: ``kill_tree`` starts the child in a new process
    group and sends every termination signal to the whole group, as long
    as the child itself has not been reaped (use ``cgroup`` to reach
    descendants that outlive it).
    ``cgroup=True`` (or the path of a parent cgroup) starts the child in a
    new cgroup v2; run() then returns only once every process of that
    cgroup has exited, killing those still running when the child exits,
    and removes it. ``rlimits`` maps resource names (``"RLIMIT_NOFILE"``)
    or ``resource`` constants to a limit or a (soft, hard) pair.
    ``pdeathsig`` is the signal the child receives when the thread that
    spawned it exits (Linux ties it to the thread, not the process).
    ``stdout=aiospawn.PTY`` (or stdin, stderr) connects the child to a
    pseudo-terminal, its controlling terminal, of ``pty_size`` (rows,
    columns).
    """
    # Validate everything before any fd or child exists.
    if preexec_fn is not None:
        raise ValueError(_PREEXEC_MESSAGE)
    if input is not None:
        if stdin is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        stdin = PIPE
    if capture_output:
        if stdout is not None or stderr is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        stdout = stderr = PIPE
    if timeout is not None and not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    text_mode = bool(encoding or errors or text or universal_newlines)
    if text_mode:
        encoding = encoding or locale.getpreferredencoding(False)
        errors = errors or "strict"
    if isinstance(input, str):
        if not text_mode:
            raise TypeError("input must be bytes unless text, encoding or errors is given")
        input = input.encode(encoding or "utf-8", errors or "strict")
    elif input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
        raise TypeError(f"input must be bytes or str, not {type(input).__name__}")
    if not isinstance(termination, Termination):
        raise TypeError(f"termination must be an aiospawn.Termination, not {type(termination).__name__}")
    if termination.process_group and not (start_new_session or process_group == 0 or kill_tree):
        raise ValueError(
            "termination signals the process group, but the child would not lead one; "
            "pass kill_tree=True, start_new_session=True or process_group=0"
        )
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
        kill_tree=kill_tree,
        pty_fd=pty_index(stdin, stdout, stderr),
    )
    context = current_context()
    watcher = context.watcher()

    # Acquire: the Stdio owns its fds until the child exists. Then the
    # child's ends are closed and the parent's ends belong to Communication.
    stdio = Stdio(stdin, stdout, stderr, pipesize=pipesize, pty_size=pty_size)
    child, tree = spawn_with_stdio(
        watcher, command, script, args, stdio, cgroup, kill_tree=kill_tree, leads_group=leads_group
    )
    if tree is not None:
        # Descendants still running when the child exits are killed, so
        # pipes they hold reach EOF and the cgroup empties.
        child.on_exit(tree.kill_if_populated)

    # Work: feed input, read output and wait for exit, bounded by the
    # timeout. The child is stopped and reaped before any exception leaves.
    communication = Communication(context.new_waiter(), watcher, child, stdio.parent_fds, input)
    try:
        communication.start()
        finished = await context.wait(communication.done, timeout)
    except GeneratorExit:
        # The coroutine is being closed, as when its task is dropped after
        # its loop closed: nothing can be awaited any more. The child is
        # killed now and reaped by its watcher, or by the orphan reaper
        # once the loop is closed. With a cgroup, kill() empties it, but the
        # cgroup itself is left behind (see the NOTE in _cgroup.py).
        communication.close()
        child.kill()
        raise
    except BaseException:
        communication.close()
        cancelled = await stop_child(context, child, termination)
        cancelled = await _empty_cgroup(context, watcher, tree) or cancelled
        if cancelled:
            raise context.cancelled_error() from None
        raise

    if not finished:
        cancelled = await stop_child(context, child, termination)
        cancelled = await _empty_cgroup(context, watcher, tree) or cancelled
        if cancelled:
            raise context.cancelled_error()
        communication.drain()
        communication.close()
        # As subprocess.run does, a stream with nothing read is None, not
        # b"". stderr is kept too, where subprocess.run drops it.
        raise subprocess.TimeoutExpired(
            args,
            timeout,  # type: ignore[arg-type]
            output=communication.collected(1) or None,
            stderr=communication.collected(2) or None,
        )

    if await _empty_cgroup(context, watcher, tree):
        raise context.cancelled_error()
    communication.close()
    child.raise_for_failure()
    return _completed(args, child, communication, text_mode, encoding, errors, check)


async def _empty_cgroup(context: Any, watcher: Any, tree: Cgroup | None) -> bool:
    """Kill what is left in the child's cgroup, wait until it is empty and remove it.

    Returns whether a cancellation arrived meanwhile (asyncio only).
    """
    if tree is None:
        return False
    cancelled = False
    if tree.populated():
        tree.kill()
        cancelled = await tree.wait_empty(context, watcher)
    tree.remove()
    return cancelled


def _decode(data: bytes | None, encoding: str | None, errors: str | None) -> str | None:
    if data is None:
        return None
    text = data.decode(encoding or "utf-8", errors or "strict")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _completed(
    args: Any,
    child: Child,
    communication: Communication,
    text_mode: bool,
    encoding: str | None,
    errors: str | None,
    check: bool,
) -> CompletedProcess[Any]:
    returncode = child.returncode
    assert returncode is not None
    stdout: Any = communication.collected(1)
    stderr: Any = communication.collected(2)
    if text_mode:
        stdout = _decode(stdout, encoding, errors)
        stderr = _decode(stderr, encoding, errors)
    if check and returncode != 0:
        raise subprocess.CalledProcessError(returncode, args, output=stdout, stderr=stderr)
    return CompletedProcess(args, returncode, stdout, stderr, child.rusage)
