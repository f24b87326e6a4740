"""Tests of the asyncio drop-in: create_subprocess_exec/_shell, Process and install()."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
import warnings

import pytest

import aiospawn
from aiospawn import PIPE

PYTHON = sys.executable


def python(code: str) -> list[str]:
    return [PYTHON, "-c", code]


# -- Process basics ----------------------------------------------------------------


@pytest.mark.both_loops
async def test_exec_wait(backend):
    process = await aiospawn.create_subprocess_exec("sh", "-c", "exit 7")
    assert isinstance(process, aiospawn.Process)
    assert isinstance(process, asyncio.subprocess.Process)
    assert process.pid > 0
    assert await process.wait() == 7
    assert process.returncode == 7


async def test_wait_idempotent():
    process = await aiospawn.create_subprocess_exec("true")
    assert await process.wait() == 0
    assert await process.wait() == 0


async def test_wait_concurrent():
    process = await aiospawn.create_subprocess_exec("sleep", "0.1")
    codes = await asyncio.gather(*(process.wait() for _ in range(5)))
    assert codes == [0] * 5


async def test_returncode_while_running():
    process = await aiospawn.create_subprocess_exec("sleep", "5")
    assert process.returncode is None
    process.kill()
    assert await process.wait() == -signal.SIGKILL


@pytest.mark.both_loops
async def test_communicate_output(backend):
    process = await aiospawn.create_subprocess_exec(
        "sh", "-c", "echo out; echo err >&2", stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await process.communicate()
    assert stdout == b"out\n"
    assert stderr == b"err\n"
    assert process.returncode == 0


@pytest.mark.both_loops
async def test_communicate_large():
    data = os.urandom(3 * 1024 * 1024)
    process = await aiospawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(data), 30)
    assert stdout == data
    assert stderr is None


async def test_communicate_child_exits_early():
    # The child never reads: asyncio ignores the broken pipe in communicate().
    process = await aiospawn.create_subprocess_exec("true", stdin=PIPE)
    stdout, stderr = await process.communicate(b"x" * (1024 * 1024))
    assert (stdout, stderr) == (None, None)
    assert process.returncode == 0


async def test_streams():
    process = await aiospawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    assert isinstance(process.stdin, asyncio.StreamWriter)
    assert isinstance(process.stdout, asyncio.StreamReader)
    process.stdin.write(b"line one\nline two\n")
    await process.stdin.drain()
    assert await process.stdout.readline() == b"line one\n"
    process.stdin.close()
    assert await process.stdout.read() == b"line two\n"
    assert await process.wait() == 0


async def test_limit():
    process = await aiospawn.create_subprocess_exec(*python("print('x' * 1000)"), stdout=PIPE, limit=100)
    with pytest.raises(ValueError):
        await process.stdout.readline()
    await process.wait()


async def test_stderr_to_stdout():
    process = await aiospawn.create_subprocess_exec(
        "sh", "-c", "echo err >&2", stdout=PIPE, stderr=aiospawn.STDOUT
    )
    stdout, stderr = await process.communicate()
    assert stdout == b"err\n"
    assert stderr is None


async def test_shell():
    process = await aiospawn.create_subprocess_shell("echo $((6 * 7))", stdout=PIPE)
    stdout, _ = await process.communicate()
    assert stdout == b"42\n"


async def test_shell_rejects_list():
    with pytest.raises(ValueError, match="cmd must be a string"):
        await aiospawn.create_subprocess_shell(["echo", "x"])


async def test_options():
    process = await aiospawn.create_subprocess_exec(
        "sh",
        "-c",
        "pwd; echo $ONLY; umask",
        stdout=PIPE,
        cwd="/tmp",
        env={"ONLY": "value"},
        umask=0o027,
    )
    stdout, _ = await process.communicate()
    assert stdout.split() == [os.path.realpath("/tmp").encode(), b"value", b"0027"]


async def test_start_new_session():
    process = await aiospawn.create_subprocess_exec(
        *python("import os; print(os.getsid(0) == os.getpid())"),
        stdout=PIPE,
        start_new_session=True,
    )
    stdout, _ = await process.communicate()
    assert stdout == b"True\n"


# -- signals ---------------------------------------------------------------------


async def test_terminate():
    process = await aiospawn.create_subprocess_exec("sleep", "30")
    process.terminate()
    assert await process.wait() == -signal.SIGTERM


async def test_send_signal():
    process = await aiospawn.create_subprocess_exec("sleep", "30")
    process.send_signal(signal.SIGINT)
    assert await process.wait() == -signal.SIGINT


async def test_signal_after_exit():
    # Like asyncio: once the transport is closed, signalling raises
    # ProcessLookupError; it never reaches whatever process reused the pid.
    process = await aiospawn.create_subprocess_exec("true")
    await process.wait()
    await asyncio.sleep(0)
    with pytest.raises(ProcessLookupError):
        process.kill()


async def test_signal_exited_unreaped():
    # The child has exited but a grandchild keeps its stdout open, so the
    # transport stays open: the signal is a no-op, as for asyncio.
    process = await aiospawn.create_subprocess_exec("sh", "-c", "sleep 0.3 &", stdout=PIPE)
    while process.returncode is None:
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert await process.stdout.read() == b""
    assert await process.wait() == 0


# -- errors ------------------------------------------------------------------------


async def test_missing_program(backend):
    with pytest.raises(FileNotFoundError) as caught:
        await aiospawn.create_subprocess_exec("aiospawn-no-such-program")
    assert caught.value.filename == "aiospawn-no-such-program"


async def test_missing_cwd(backend):
    with pytest.raises(FileNotFoundError) as caught:
        await aiospawn.create_subprocess_exec("true", cwd="/aiospawn/missing")
    assert caught.value.filename == "/aiospawn/missing"


async def test_missing_program_with_pipes():
    with pytest.raises(FileNotFoundError):
        await aiospawn.create_subprocess_exec(
            "aiospawn-no-such-program", stdin=PIPE, stdout=PIPE, stderr=PIPE
        )


async def test_preexec_fn():
    with pytest.raises(ValueError, match="start_new_session"):
        await aiospawn.create_subprocess_exec("true", preexec_fn=lambda: None)


@pytest.mark.parametrize(
    "option", [{"text": True}, {"encoding": "utf-8"}, {"errors": "strict"}, {"bufsize": 1}]
)
async def test_rejects_text_options(option):
    with pytest.raises(ValueError):
        await aiospawn.create_subprocess_exec("true", **option)


async def test_nul_argument():
    with pytest.raises(ValueError, match=r"args\[1\]"):
        await aiospawn.create_subprocess_exec("echo", "a\0b")


# -- cancellation, garbage collection, closed loops -----------------------------


async def test_cancel_wait(live_children):
    # Cancelling wait() leaves the child running, as asyncio does.
    process = await aiospawn.create_subprocess_exec("sleep", "30")
    waiter = asyncio.ensure_future(process.wait())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert process.pid in live_children()
    assert process.returncode is None
    process.kill()
    assert await process.wait() == -signal.SIGKILL


async def test_cancel_communicate():
    process = await aiospawn.create_subprocess_exec("sleep", "30", stdout=PIPE)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(process.communicate(), 0.1)
    assert process.returncode is None
    process.kill()
    assert await process.wait() == -signal.SIGKILL


async def test_garbage_collected(live_children, recwarn):
    process = await aiospawn.create_subprocess_exec("sleep", "0.1")
    pid = process.pid
    del process
    gc.collect()
    deadline = time.monotonic() + 5
    while pid in live_children() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert pid not in live_children()


def test_loop_closed_with_running_child(live_children):
    loop = asyncio.new_event_loop()
    process = loop.run_until_complete(aiospawn.create_subprocess_exec("sleep", "0.2"))
    pid = process.pid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop.close()
        deadline = time.monotonic() + 5
        while pid in live_children() and time.monotonic() < deadline:
            time.sleep(0.02)
        del process
        gc.collect()
    assert pid not in live_children()


def test_loop_closed_no_thread_left():
    threads_before = threading.active_count()
    loop = asyncio.new_event_loop()
    process = loop.run_until_complete(aiospawn.create_subprocess_exec("true"))
    loop.run_until_complete(process.wait())
    loop.close()
    assert threading.active_count() == threads_before


async def test_no_thread_no_sigchld_handler():
    handler_before = signal.getsignal(signal.SIGCHLD)
    threads_before = threading.active_count()
    processes = [await aiospawn.create_subprocess_exec("sleep", "0.2") for _ in range(20)]
    assert threading.active_count() == threads_before
    assert len(os.listdir("/proc/self/task")) == threads_before
    assert signal.getsignal(signal.SIGCHLD) is handler_before
    assert await asyncio.gather(*(p.wait() for p in processes)) == [0] * 20


# -- install() ---------------------------------------------------------------------


@pytest.mark.both_loops
async def test_install():
    loop = asyncio.get_running_loop()
    aiospawn.install()
    try:
        assert aiospawn.is_installed(loop)
        process = await asyncio.create_subprocess_exec("echo", "routed", stdout=PIPE)
        transport = process._transport
        assert type(transport).__module__ == "aiospawn._transport"
        stdout, _ = await process.communicate()
        assert stdout == b"routed\n"
        shell = await asyncio.create_subprocess_shell("exit 3")
        assert await shell.wait() == 3
    finally:
        aiospawn.uninstall()
    assert not aiospawn.is_installed(loop)
    process = await asyncio.create_subprocess_exec("true")
    assert type(process._transport).__module__ != "aiospawn._transport"
    await process.wait()


async def test_install_idempotent():
    aiospawn.install()
    aiospawn.install()
    aiospawn.uninstall()
    assert not aiospawn.is_installed(asyncio.get_running_loop())


class RecordingProtocol(asyncio.SubprocessProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.calls: list[tuple] = []
        self.data: dict[int, bytes] = {1: b"", 2: b""}
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.calls.append(("connection_made",))

    def pipe_data_received(self, fd, data):
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.calls.append(("pipe_connection_lost", fd))

    def process_exited(self):
        self.calls.append(("process_exited",))

    def connection_lost(self, exc):
        self.calls.append(("connection_lost",))
        self.done.set_result(None)


@pytest.mark.both_loops
async def test_transport_protocol_order():
    loop = asyncio.get_running_loop()
    aiospawn.install()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop),
            "sh",
            "-c",
            "echo out; echo err >&2",
            stdin=None,
            stdout=PIPE,
            stderr=PIPE,
        )
        assert transport.get_pid() > 0
        assert transport.get_pipe_transport(1) is not None
        assert transport.get_pipe_transport(0) is None
        await asyncio.wait_for(protocol.done, 10)
    finally:
        aiospawn.uninstall()
    names = [call[0] for call in protocol.calls]
    assert names[0] == "connection_made"
    assert names[-1] == "connection_lost"
    assert names.count("process_exited") == 1
    assert ("pipe_connection_lost", 1) in protocol.calls
    assert ("pipe_connection_lost", 2) in protocol.calls
    assert protocol.data == {1: b"out\n", 2: b"err\n"}
    assert transport.get_returncode() == 0
    transport.close()


async def test_transport_kill_and_close():
    loop = asyncio.get_running_loop()
    aiospawn.install()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), "sleep", "30", stdin=None, stdout=None, stderr=None
        )
        transport.kill()
        await asyncio.wait_for(protocol.done, 10)
        assert transport.get_returncode() == -signal.SIGKILL
        transport.close()
        assert transport.is_closing()
    finally:
        aiospawn.uninstall()


async def test_transport_close_kills_running_child(live_children):
    loop = asyncio.get_running_loop()
    aiospawn.install()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), "sleep", "30", stdin=None, stdout=None, stderr=None
        )
        transport.close()
        await asyncio.wait_for(protocol.done, 10)
        assert transport.get_returncode() == -signal.SIGKILL
    finally:
        aiospawn.uninstall()


async def test_exec_failures_in_a_row(backend):
    # Each failure must be reported, never a child that looks started.
    for _ in range(300):
        with pytest.raises(FileNotFoundError):
            await aiospawn.create_subprocess_exec("aiospawn-no-such-program")


# -- aiospawn extras on the asyncio drop-in --------------------------------------


async def test_extras_rusage_and_rlimits():
    process = await aiospawn.create_subprocess_exec(
        "sh", "-c", "read line; ulimit -Sn", stdin=PIPE, stdout=PIPE, rlimits={"RLIMIT_NOFILE": 99}
    )
    assert process.rusage is None
    stdout, _ = await process.communicate(b"go\n")
    assert stdout == b"99\n"
    assert process.rusage is not None


async def test_extras_kill_tree(tmp_path):
    marker = tmp_path / "pid"
    process = await aiospawn.create_subprocess_exec(
        "sh", "-c", f"sleep 30 & echo $! > {marker}; wait", kill_tree=True
    )
    while not marker.exists() or not marker.read_text().strip():
        await asyncio.sleep(0.01)
    process.kill()
    assert await process.wait() == -signal.SIGKILL
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{grandchild}") and time.monotonic() < deadline:
        with open(f"/proc/{grandchild}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        await asyncio.sleep(0.02)
    else:
        assert not os.path.exists(f"/proc/{grandchild}")


async def test_kill_tree_method_needs_group():
    process = await aiospawn.create_subprocess_exec("sleep", "30")
    with pytest.raises(ValueError, match="kill_tree=True"):
        process.kill_tree()
    process.kill()
    await process.wait()


async def test_kill_tree_method():
    process = await aiospawn.create_subprocess_exec("sleep", "30", start_new_session=True)
    process.kill_tree()
    assert await process.wait() == -signal.SIGKILL


async def test_pty_streams():
    code = "import os; print(os.isatty(0), os.isatty(1)); print(input())"
    process = await aiospawn.create_subprocess_exec(
        *python(code), stdin=aiospawn.PTY, stdout=aiospawn.PTY, pty_size=(20, 70)
    )
    process.stdin.write(b"typed\n")
    output = await process.stdout.read()
    assert output.endswith(b"True True\r\ntyped\r\n")
    assert await process.wait() == 0


async def test_pty_stdout_size():
    process = await aiospawn.create_subprocess_exec(
        "sh", "-c", "stty size < /dev/tty", stdout=aiospawn.PTY, pty_size=(21, 71)
    )
    stdout, _ = await process.communicate()
    assert stdout == b"21 71\r\n"
    assert process.returncode == 0


async def test_pty_uvloop_rejected():
    import uvloop

    async def main():
        await aiospawn.create_subprocess_exec("cat", stdout=aiospawn.PTY)

    with pytest.raises(ValueError, match="uvloop"):
        await asyncio.to_thread(uvloop.run, main())


async def test_termination_rejected():
    with pytest.raises(TypeError):
        await aiospawn.create_subprocess_exec("true", termination=aiospawn.KILL)
