"""run() and open_process() under every async backend: asyncio, asyncio + uvloop, trio.

Each test body is a coroutine function run with anyio.run on the backend
of the parameter, so the same body checks all three.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import anyio
import pytest

import aiospawn

BACKENDS = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


@pytest.fixture(params=list(BACKENDS))
def run_on(request):
    """Run a coroutine function to completion on the backend of the parameter."""
    backend, options = BACKENDS[request.param]

    def runner(function, *args):
        return anyio.run(function, *args, backend=backend, backend_options=options)

    return runner


# -- run() ---------------------------------------------------------------------------


def test_run_capture(run_on):
    async def main():
        return await aiospawn.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True)

    result = run_on(main)
    assert result.returncode == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"


def test_run_input_text(run_on):
    async def main():
        return await aiospawn.run(["cat"], input="héllo\n", capture_output=True, text=True, encoding="utf-8")

    assert run_on(main).stdout == "héllo\n"


def test_run_check(run_on):
    async def main():
        await aiospawn.run(["sh", "-c", "echo no >&2; exit 1"], capture_output=True, check=True)

    with pytest.raises(subprocess.CalledProcessError) as caught:
        run_on(main)
    assert caught.value.returncode == 1
    assert caught.value.stderr == b"no\n"


def test_run_timeout(run_on):
    async def main():
        await aiospawn.run(["sh", "-c", "echo started; exec sleep 30"], capture_output=True, timeout=0.3)

    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        run_on(main)
    assert time.monotonic() - started < 5
    assert caught.value.stdout == b"started\n"


def test_run_missing_program(run_on):
    async def main():
        await aiospawn.run(["aiospawn-no-such-program"])

    with pytest.raises(FileNotFoundError):
        run_on(main)


def test_move_on_after_kills(run_on, live_children):
    async def main():
        with anyio.move_on_after(0.2) as scope:
            await aiospawn.run(["sleep", "30"])
        return scope.cancelled_caught

    started = time.monotonic()
    assert run_on(main) is True
    assert time.monotonic() - started < 5
    assert live_children() == set()


def test_task_group_one_fails(run_on, live_children):
    async def main():
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(aiospawn.run, ["sleep", "30"])
            await anyio.sleep(0.1)
            await aiospawn.run(["false"], check=True)

    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        run_on(main)
    assert caught.group_contains(subprocess.CalledProcessError)
    assert time.monotonic() - started < 5
    assert live_children() == set()


def test_termination_grace(run_on):
    # The child exits on SIGTERM by itself, so no SIGKILL is needed.
    async def main():
        policy = aiospawn.Termination(signal.SIGTERM, grace=5)
        with anyio.move_on_after(0.3):
            await aiospawn.run([sys.executable, "-c", "import time; time.sleep(30)"], termination=policy)

    started = time.monotonic()
    run_on(main)
    assert time.monotonic() - started < 4


def test_termination_grace_then_kill(run_on):
    async def main():
        policy = aiospawn.Termination(signal.SIGTERM, grace=0.3)
        with anyio.move_on_after(0.2):
            await aiospawn.run(["sh", "-c", "trap '' TERM; sleep 30"], termination=policy)

    started = time.monotonic()
    run_on(main)
    assert time.monotonic() - started < 4


def test_termination_process_group(run_on, live_children):
    async def main(marker):
        policy = aiospawn.Termination(signal.SIGKILL, process_group=True)
        with anyio.move_on_after(0.5):
            await aiospawn.run(
                ["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"],
                start_new_session=True,
                termination=policy,
            )

    marker = f"/tmp/aiospawn-test-{os.getpid()}-{threading.get_ident()}"
    try:
        run_on(main, marker)
        with open(marker) as handle:
            grandchild = int(handle.read())
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{grandchild}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{grandchild}") or _is_zombie(grandchild)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_termination_group_needs_leader(run_on):
    # Checked before anything is spawned.
    async def main():
        await aiospawn.run(["true"], termination=aiospawn.Termination(process_group=True))

    with pytest.raises(ValueError, match="start_new_session"):
        run_on(main)


def test_no_thread(run_on):
    async def main():
        threads = threading.active_count()
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(aiospawn.run, ["sleep", "0.2"])
            await anyio.sleep(0.1)
            assert threading.active_count() == threads
            assert len(os.listdir("/proc/self/task")) == threads

    run_on(main)


# -- open_process() ------------------------------------------------------------------


def test_open_process_streams(run_on):
    async def main():
        async with await aiospawn.open_process(["cat"]) as process:
            assert isinstance(process, anyio.abc.Process)
            await process.stdin.send(b"hello")
            await process.stdin.aclose()
            received = b""
            async for chunk in process.stdout:
                received += chunk
        return received, process.returncode

    assert run_on(main) == (b"hello", 0)


def test_open_process_large(run_on):
    data = os.urandom(2 * 1024 * 1024)

    async def main():
        received = bytearray()
        async with await aiospawn.open_process(["cat"]) as process:

            async def feed():
                await process.stdin.send(data)
                await process.stdin.aclose()

            async with anyio.create_task_group() as group:
                group.start_soon(feed)
                async for chunk in process.stdout:
                    received += chunk
        return bytes(received)

    assert run_on(main) == data


def test_open_process_shell(run_on):
    async def main():
        process = await aiospawn.open_process("echo $((2 + 3)); exit 4", stdin=None)
        async with process:
            output = await process.stdout.receive()
        return output, process.returncode

    assert run_on(main) == (b"5\n", 4)


def test_open_process_missing(run_on):
    async def main():
        await aiospawn.open_process(["aiospawn-no-such-program"])

    with pytest.raises(FileNotFoundError):
        run_on(main)


def test_open_process_signals(run_on):
    async def main():
        process = await aiospawn.open_process(["sleep", "30"], stdin=None, stdout=None, stderr=None)
        assert process.returncode is None
        process.terminate()
        code = await process.wait()
        process.kill()  # after the reap: a no-op, never a signal to a reused pid
        await process.aclose()
        return code

    assert run_on(main) == -signal.SIGTERM


def test_wait_move_on_after(run_on, live_children):
    # Cancelling wait() leaves the child running; it is still reaped later.
    async def main():
        process = await aiospawn.open_process(["sleep", "30"], stdin=None, stdout=None, stderr=None)
        with anyio.move_on_after(0.1):
            await process.wait()
        assert process.returncode is None
        assert process.pid in live_children()
        process.kill()
        return await process.wait()

    assert run_on(main) == -signal.SIGKILL


def test_aclose_cancelled_kills(run_on, live_children):
    async def main():
        process = await aiospawn.open_process(["sleep", "30"], stdin=None, stdout=None, stderr=None)
        with anyio.move_on_after(0.1):
            await process.aclose()
        return process.returncode

    assert run_on(main) == -signal.SIGKILL
    assert live_children() == set()


def test_receive_after_close(run_on):
    async def main():
        async with await aiospawn.open_process(["true"]) as process:
            await process.stdout.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await process.stdout.receive()

    run_on(main)


def test_send_broken_pipe(run_on):
    async def main():
        async with await aiospawn.open_process(["true"], stdout=None, stderr=None) as process:
            await process.wait()
            with pytest.raises(anyio.BrokenResourceError):
                await process.stdin.send(b"x" * (1024 * 1024))

    run_on(main)
