"""Nothing leaked, nothing lost: cancellation, timeouts, closed loops, threads, soak, exit statuses, output.

Every test runs real children through pipes and signals, and the autouse
no_leaks fixture of conftest.py fails it if an fd or a child of this
process is left behind. Cancellation tests sweep the cancel over event
loop iterations, so it lands at each await point of the call in turn.

The soak spawns 2,000 children with random cancellations and timeouts. The
full soak of 20,000 children runs with::

    AIOSPAWN_SOAK=20000 python -m pytest tests/test_reliability.py -k soak

It took 14 seconds on a 2-core x86_64 VM (Linux 6.18, Python 3.11), well
inside the 60-second test timeout. A slower machine may need a larger
``--timeout``. AIOSPAWN_SOAK_SEED replays the seed a failure reports.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import random
import signal
import subprocess
import threading
import time
import warnings

import pytest
import uvloop
from conftest import open_fds, waitable_child
from helpers import kill_quietly, pidfd_keeps_exit_status, py, wait_gone

import aiospawn
from aiospawn import PIPE, Termination

MIB = 1 << 20
# A cat written in Python reads and writes in chunks, so one run has many
# pipe events: each is an await point a cancellation can land on.
ECHO_INPUT = py(
    "import os\n"
    "while True:\n"
    "    data = os.read(0, 65536)\n"
    "    if not data:\n"
    "        break\n"
    "    os.write(1, data)\n"
)
PAYLOAD = bytes(range(256)) * 1024  # 256 KiB with NUL bytes
CANCEL_ITERATIONS = range(0, 60, 2)
CANCEL_BOUND_SECONDS = 10
KEEPS_STATUS = pidfd_keeps_exit_status()

KERNEL = os.uname().release


async def settle_children(live_children, seconds: float = 5.0) -> set[int]:
    """Wait until this process has no child left, or seconds pass; return what is left."""
    deadline = time.monotonic() + seconds
    while live_children() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return live_children()


async def cancel_after(coroutine, iterations: int):
    """Run coroutine as a task, cancel it after iterations loop iterations, return its outcome.

    The outcome is "hung" when the cancelled task has not ended 10 seconds
    later, so a hang fails the sweep at the iteration that caused it.
    """
    task = asyncio.ensure_future(coroutine)
    for _ in range(iterations):
        if task.done():
            break
        await asyncio.sleep(0)
    task.cancel()
    try:
        return await asyncio.wait_for(task, CANCEL_BOUND_SECONDS)
    except asyncio.CancelledError:
        return "cancelled"
    except asyncio.TimeoutError:
        return "hung"


async def end_processes(processes: list[aiospawn.Process]) -> None:
    """Kill and wait for processes a cancelled coroutine left running, as its caller must."""
    for process in processes:
        if process.returncode is None:
            process.kill()
        await process.wait()


# -- cancellation at every await point ------------------------------------------------


@pytest.mark.both_loops
async def test_cancel_run_sweep(backend, live_children):
    outcomes = set()
    for iterations in CANCEL_ITERATIONS:
        outcome = await cancel_after(run_echo(), iterations)
        assert outcome != "hung", f"run() hung after a cancel at iteration {iterations}"
        outcomes.add(outcome)
        assert live_children() == set(), f"child left after a cancel at iteration {iterations}"
    assert "cancelled" in outcomes


async def run_echo() -> str:
    result = await aiospawn.run(ECHO_INPUT, input=PAYLOAD, capture_output=True)
    assert result.stdout == PAYLOAD
    return "finished"


async def test_cancel_run_by_delay(backend, live_children):
    for step in range(25):
        task = asyncio.ensure_future(run_echo())
        await asyncio.sleep(step * 0.002)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert live_children() == set(), f"child left after a cancel at {step * 2} ms"


@pytest.mark.both_loops
async def test_cancel_exec_sweep(backend, live_children):
    for iterations in CANCEL_ITERATIONS:
        started: list[aiospawn.Process] = []

        async def spawn_and_communicate():
            process = await aiospawn.create_subprocess_exec(*ECHO_INPUT, stdin=PIPE, stdout=PIPE)
            started.append(process)
            output, _ = await process.communicate(PAYLOAD)
            assert output == PAYLOAD
            return process.returncode

        outcome = await cancel_after(spawn_and_communicate(), iterations)
        assert outcome != "hung", f"create_subprocess_exec hung after a cancel at iteration {iterations}"
        await end_processes(started)
        assert live_children() == set(), f"child left after a cancel at iteration {iterations}"


async def test_cancel_exec_failure_sweep(backend, live_children):
    # The exec fails: the cancel lands while the failed child is reaped.
    for iterations in [*range(0, 20)] * 3:
        outcome = await cancel_after(expect_missing(), iterations)
        assert outcome in ("cancelled", "raised"), (
            f"outcome {outcome!r} after a cancel at iteration {iterations}"
        )
        assert live_children() == set(), f"child left after a cancel at iteration {iterations}"


async def expect_missing() -> str:
    try:
        await aiospawn.create_subprocess_exec("/nonexistent/aiospawn-test", stdout=PIPE, stderr=PIPE)
    except FileNotFoundError:
        return "raised"
    return "spawned"


async def test_cancel_wait_keeps_status(backend):
    for iterations in range(0, 30):
        process = await aiospawn.create_subprocess_exec("sh", "-c", "exit 9")
        await cancel_after(process.wait(), iterations)
        assert await process.wait() == 9, f"status lost after a cancel at iteration {iterations}"


async def test_cancel_communicate_sweep(backend, live_children):
    for iterations in CANCEL_ITERATIONS:
        process = await aiospawn.create_subprocess_exec(*ECHO_INPUT, stdin=PIPE, stdout=PIPE)
        await cancel_after(process.communicate(PAYLOAD), iterations)
        await end_processes([process])
        assert live_children() == set(), f"child left after a cancel at iteration {iterations}"


async def test_cancel_read_loses_nothing(backend):
    for iterations in range(0, 40, 3):
        process = await aiospawn.create_subprocess_exec(*ECHO_INPUT, stdin=PIPE, stdout=PIPE)
        process.stdin.write(PAYLOAD)
        process.stdin.close()
        first = await cancel_after(process.stdout.readexactly(100_000), iterations)
        received = b"" if first == "cancelled" else first
        received += await process.stdout.read()
        assert received == PAYLOAD, f"output lost after a cancel at iteration {iterations}"
        assert await process.wait() == 0


async def test_cancel_drain_loses_nothing(backend):
    for iterations in range(0, 40, 3):
        process = await aiospawn.create_subprocess_exec(*ECHO_INPUT, stdin=PIPE, stdout=PIPE)
        process.stdin.write(PAYLOAD)
        await cancel_after(process.stdin.drain(), iterations)
        process.stdin.close()
        output, _ = await process.communicate()
        assert output == PAYLOAD, f"input lost after a cancel at iteration {iterations}"


# -- timeouts -------------------------------------------------------------------------------


async def test_timeout_term_ignored(backend, live_children):
    policy = Termination(signal.SIGTERM, grace=0.3)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        await aiospawn.run(
            ["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"],
            stdout=PIPE,
            timeout=0.3,
            termination=policy,
        )
    elapsed = time.monotonic() - started
    assert caught.value.output == b"ready\n"
    assert 0.55 <= elapsed < 3
    assert live_children() == set()


async def test_timeout_grandchild_group(backend, live_children):
    policy = Termination(signal.SIGKILL, process_group=True)
    grandchild = None
    try:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await aiospawn.run(
                ["sh", "-c", "sleep 30 & echo $!; wait"],
                capture_output=True,
                timeout=0.5,
                start_new_session=True,
                termination=policy,
            )
        grandchild = int(caught.value.output)
        assert wait_gone(grandchild), "the grandchild holding the pipes survived the group kill"
    finally:
        if grandchild is not None:
            kill_quietly(grandchild)
    assert live_children() == set()


async def test_timeout_grandchild_holds_pipes(backend):
    # Without a group kill the grandchild keeps stdout open: run() still
    # returns at the timeout, and the test ends the grandchild itself.
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        await aiospawn.run(["sh", "-c", "sleep 30 & echo $!"], stdout=PIPE, timeout=0.4)
    elapsed = time.monotonic() - started
    kill_quietly(int(caught.value.output))
    assert elapsed < 2


# -- the caller fails while children run ---------------------------------------------------------


@pytest.mark.both_loops
async def test_sibling_failure_reaps(backend, live_children):
    async def fail_soon():
        await asyncio.sleep(0.2)
        raise ValueError("the caller's own error")

    tasks = [asyncio.ensure_future(aiospawn.run(["sleep", "30"], capture_output=True)) for _ in range(6)]
    with pytest.raises(ValueError):
        await asyncio.gather(*tasks, fail_soon())
    assert len(live_children()) == 6
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert live_children() == set()


async def test_error_in_process_block(backend, live_children):
    process = None
    with pytest.raises(KeyError):
        process = await aiospawn.create_subprocess_exec("sleep", "30", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        try:
            raise KeyError("the caller's own error")
        finally:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    assert live_children() == set()


# -- dropped processes, closed loops, ended threads -------------------------------------------


async def test_dropped_process_with_pipes(backend, live_children):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(5):
            process = await aiospawn.create_subprocess_exec(
                "sh", "-c", "echo unread; sleep 0.2", stdin=PIPE, stdout=PIPE, stderr=PIPE
            )
            del process
        gc.collect()
        assert await settle_children(live_children) == set()
        gc.collect()


def test_loop_closed_pending_run(backend, live_children):
    loop = asyncio.new_event_loop()
    task = loop.create_task(aiospawn.run(["sleep", "0.3"], capture_output=True))
    loop.run_until_complete(asyncio.sleep(0.1))
    assert len(live_children()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop.close()
        assert wait_no_children(live_children)
        task = None
        gc.collect()
    assert task is None


def test_loop_closed_pending_process(backend, live_children):
    loop = asyncio.new_event_loop()
    process = loop.run_until_complete(
        aiospawn.create_subprocess_exec("sh", "-c", "sleep 0.3; echo late", stdout=PIPE, stderr=PIPE)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop.close()
        assert wait_no_children(live_children)
        del process
        gc.collect()


def test_asyncio_run_cancels_run(backend, live_children):
    async def main():
        asyncio.ensure_future(aiospawn.run(["sleep", "30"], capture_output=True))
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert live_children() == set()


def wait_no_children(live_children, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while live_children() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not live_children()


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_thread_asyncio_run_ends(backend, live_children):
    # asyncio.run closes the thread's loop while the child still runs.
    async def main():
        return await aiospawn.create_subprocess_exec("sh", "-c", "sleep 0.3", stdout=PIPE)

    box = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(main())))
    thread.start()
    thread.join()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        box.clear()
        gc.collect()
        assert wait_no_children(live_children)
        # The orphan reaper let go of the child, and with it the pipe.
        gc.collect()


@pytest.mark.parametrize("kill_tree", [False, True])
def test_run_closed_without_its_loop(backend, live_children, kill_tree):
    # A task dropped after its loop closed has its coroutine closed by the
    # garbage collector: run() must kill the child without awaiting, not
    # fail with "coroutine ignored GeneratorExit".
    loop = asyncio.new_event_loop()
    coroutine = aiospawn.run(["sleep", "30"], capture_output=True, kill_tree=kill_tree)
    task = loop.create_task(coroutine)
    loop.run_until_complete(asyncio.sleep(0.2))
    loop.close()
    task._log_destroy_pending = False  # the message a dropped pending task logs is expected here
    coroutine.close()
    assert wait_no_children(live_children)


def test_orphan_killed_from_another_thread(backend, live_children):
    # Once asyncio.run has closed the loop, the reaper thread owns the
    # child; kill() and the Popen-like wait() from this thread still work.
    async def main():
        return await aiospawn.create_subprocess_exec("sleep", "30")

    box = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(main())))
    thread.start()
    thread.join()
    process = box.pop()
    handle = process._transport.get_extra_info("subprocess")
    assert handle.poll() is None
    process.kill()
    assert handle.wait(timeout=5) == -signal.SIGKILL
    assert wait_no_children(live_children)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del process, handle
        gc.collect()


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_thread_loop_abandoned(backend, live_children):
    # The thread returns without closing its loop; once the program drops
    # the loop, its children must still be reaped and its fds closed.
    def worker():
        loop = asyncio.new_event_loop()
        loop.run_until_complete(aiospawn.create_subprocess_exec("sh", "-c", "sleep 0.3", stdout=PIPE))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
        assert wait_no_children(live_children)
        gc.collect()


# -- many threads, many loops, gc running ------------------------------------------------------------


def test_threads_loops_gc(live_children):
    spawn_from_threads(live_children, [asyncio.new_event_loop] * 8)


def test_threads_uvloops_gc(live_children):
    spawn_from_threads(live_children, [uvloop.new_event_loop] * 8)


def test_uvloop_pipe_fd_has_one_owner(live_children):
    # uvloop's pipe transports give the fd to libuv, which closes it, and
    # close the file object they were given as well (uvloop 0.23).
    # If that file owned the fd too, the second close could hit whatever
    # another thread opened under the same number in between: the race
    # test_threads_uvloops_gc stumbled on now and then. Here the file's
    # close comes first, and the fd must stay open for libuv.
    async def main():
        process = await aiospawn.create_subprocess_exec(
            *py("import sys; sys.stdout.write(sys.stdin.read())"), stdin=PIPE, stdout=PIPE
        )
        handle = process._transport.get_extra_info("subprocess")
        for pipe_file in (handle.stdin, handle.stdout):
            number = pipe_file.fileno()
            pipe_file.close()
            os.fstat(number)  # raises EBADF if the file had owned it
        output, _ = await process.communicate(b"one owner")
        return output

    assert uvloop.run(main()) == b"one owner"


def spawn_from_threads(live_children, factories):
    """Run spawn_batch in one thread per loop factory while another thread runs gc.collect()."""
    stop = threading.Event()
    errors: list[str] = []
    results: dict[int, list[bytes]] = {}

    def collect_garbage():
        while not stop.is_set():
            gc.collect()

    def worker(index: int):
        loop = factories[index]()
        try:
            results[index] = loop.run_until_complete(asyncio.wait_for(spawn_batch(index), 30))
        except BaseException as error:  # reported by the main thread
            errors.append(repr(error))
        finally:
            loop.close()

    children_before = live_children()
    collector = threading.Thread(target=collect_garbage)
    workers = [threading.Thread(target=worker, args=(index,)) for index in range(len(factories))]
    collector.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(40)
    stop.set()
    collector.join()
    assert errors == []
    for index in range(len(factories)):
        assert results.get(index) == expected_batch(index), f"thread {index} did not finish its batch"
    assert live_children() - children_before == set()


async def spawn_batch(index: int) -> list[bytes]:
    outputs = []
    for round_number in range(4):
        runs = [aiospawn.run(["echo", f"{index}.{round_number}.{n}"], stdout=PIPE) for n in range(5)]
        outputs.extend(result.stdout for result in await asyncio.gather(*runs))
        process = await aiospawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        output, _ = await process.communicate(f"{index}.{round_number}.cat\n".encode())
        outputs.append(output)
    return outputs


def expected_batch(index: int) -> list[bytes]:
    expected = []
    for round_number in range(4):
        expected.extend(f"{index}.{round_number}.{n}\n".encode() for n in range(5))
        expected.append(f"{index}.{round_number}.cat\n".encode())
    return expected


# -- soak ---------------------------------------------------------------------------------------------

SOAK_SPAWNS = int(os.environ.get("AIOSPAWN_SOAK", "2000"))
SOAK_CONCURRENCY = 16


def test_soak(live_children):
    seed = int(os.environ.get("AIOSPAWN_SOAK_SEED", str(random.randrange(1 << 32))))
    fds_before = open_fds()
    children_before = live_children()
    zombie_before = waitable_child()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        counts = asyncio.run(soak(random.Random(seed), SOAK_SPAWNS))
    assert sum(counts.values()) == SOAK_SPAWNS, f"seed {seed}: {counts}"
    assert live_children() - children_before == set(), f"seed {seed}: children left"
    assert waitable_child() in (None, zombie_before), f"seed {seed}: a zombie is left"
    assert open_fds() == fds_before, f"seed {seed}: fds changed"


async def soak(rng: random.Random, spawns: int) -> dict[str, int]:
    gate = asyncio.Semaphore(SOAK_CONCURRENCY)
    counts: dict[str, int] = {}

    async def one(number: int, kind: str, delay: float):
        async with gate:
            outcome = await SOAK_KINDS[kind](number, delay)
        counts[outcome] = counts.get(outcome, 0) + 1

    kinds = sorted(SOAK_KINDS)
    await asyncio.gather(*(one(n, rng.choice(kinds), rng.uniform(0, 0.03)) for n in range(spawns)))
    return counts


async def soak_plain(number: int, delay: float) -> str:
    result = await aiospawn.run(["sh", "-c", f"exit {number % 256}"])
    assert result.returncode == number % 256
    return "exited"


async def soak_capture(number: int, delay: float) -> str:
    result = await aiospawn.run(["echo", str(number)], capture_output=True)
    assert result.stdout == f"{number}\n".encode()
    return "captured"


async def soak_timeout(number: int, delay: float) -> str:
    try:
        await aiospawn.run(["sh", "-c", "echo x; exec sleep 5"], capture_output=True, timeout=delay)
    except subprocess.TimeoutExpired:
        return "timed out"
    raise AssertionError("sleep 5 finished before its timeout")


async def soak_cancel_run(number: int, delay: float) -> str:
    task = asyncio.ensure_future(aiospawn.run(["cat"], input=b"x" * 70_000, capture_output=True))
    await asyncio.sleep(delay)
    task.cancel()
    try:
        result = await task
    except asyncio.CancelledError:
        return "cancelled"
    assert result.stdout == b"x" * 70_000
    return "finished before the cancel"


async def soak_cancel_process(number: int, delay: float) -> str:
    started: list[aiospawn.Process] = []

    async def body():
        process = await aiospawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        started.append(process)
        return await process.communicate(b"y" * 70_000)

    task = asyncio.ensure_future(body())
    await asyncio.sleep(delay)
    task.cancel()
    try:
        output, _ = await task
    except asyncio.CancelledError:
        await end_processes(started)
        return "cancelled"
    assert output == b"y" * 70_000
    return "finished before the cancel"


async def soak_missing(number: int, delay: float) -> str:
    try:
        await aiospawn.run(["/nonexistent/aiospawn-soak"], capture_output=True)
    except FileNotFoundError:
        return "exec failed"
    raise AssertionError("a missing program ran")


async def soak_signal(number: int, delay: float) -> str:
    process = await aiospawn.create_subprocess_exec("sleep", "5")
    await asyncio.sleep(delay)
    process.terminate()
    assert await process.wait() == -signal.SIGTERM
    return "terminated"


SOAK_KINDS = {
    "plain": soak_plain,
    "capture": soak_capture,
    "timeout": soak_timeout,
    "cancel run": soak_cancel_run,
    "cancel process": soak_cancel_process,
    "missing": soak_missing,
    "signal": soak_signal,
}


# -- exit status is never lost ---------------------------------------------------------------------


def reap_everything():
    """Collect every exited child the way careless application code does."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class ReaperThread:
    """A thread that calls os.waitpid(-1, 0) in a loop, stealing every status it can."""

    def __init__(self):
        self.stop = threading.Event()
        self.stolen = 0
        self.thread = threading.Thread(target=self._loop)

    def _loop(self):
        while not self.stop.is_set():
            try:
                os.waitpid(-1, 0)
                self.stolen += 1
            except ChildProcessError:
                time.sleep(0.001)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(10)


class Disturbance:
    """One way an application interferes with SIGCHLD or reaping, as a context manager."""

    def __init__(self, kind: str):
        self.kind = kind
        self.previous = None
        self.reaper = None

    def __enter__(self):
        if self.kind == "sigchld_ignored":
            self.previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        elif self.kind == "sigchld_handler":
            self.previous = signal.signal(signal.SIGCHLD, lambda number, frame: reap_everything())
        else:
            self.reaper = ReaperThread().__enter__()
        return self

    def __exit__(self, *exc_info):
        if self.reaper is not None:
            self.reaper.__exit__(*exc_info)
        else:
            signal.signal(signal.SIGCHLD, self.previous)


DISTURBANCES = ["sigchld_ignored", "sigchld_handler", "waitpid_thread"]


async def statuses_under(kind: str, api: str) -> list[object]:
    """Return what 12 children exiting with 0..11 report under disturbance kind."""
    codes = list(range(12))

    async def one(code: int):
        try:
            if api == "run":
                return (await aiospawn.run(["sh", "-c", f"sleep 0.05; exit {code}"])).returncode
            process = await aiospawn.create_subprocess_exec("sh", "-c", f"sleep 0.05; exit {code}")
            return await process.wait()
        except aiospawn.ExitStatusUnknownError as error:
            return error

    with Disturbance(kind):
        return list(await asyncio.gather(*(one(code) for code in codes)))


@pytest.mark.skipif(not KEEPS_STATUS, reason=f"kernel {KERNEL} has no PIDFD_INFO_EXIT (Linux 6.15)")
@pytest.mark.parametrize("api", ["run", "exec"])
@pytest.mark.parametrize("kind", DISTURBANCES)
async def test_status_survives(backend, kind, api):
    assert await statuses_under(kind, api) == list(range(12))


@pytest.mark.skipif(KEEPS_STATUS, reason=f"kernel {KERNEL} keeps the status in the pidfd (PIDFD_INFO_EXIT)")
@pytest.mark.parametrize("api", ["run", "exec"])
@pytest.mark.parametrize("kind", DISTURBANCES)
async def test_status_unknown_not_invented(backend, kind, api):
    outcomes = await statuses_under(kind, api)
    for code, outcome in enumerate(outcomes):
        assert outcome == code or isinstance(outcome, aiospawn.ExitStatusUnknownError)


@pytest.mark.skipif(KEEPS_STATUS, reason=f"kernel {KERNEL} keeps the status in the pidfd (PIDFD_INFO_EXIT)")
async def test_status_unknown_sigchld_ignored(backend):
    with Disturbance("sigchld_ignored"):
        with pytest.raises(aiospawn.ExitStatusUnknownError):
            await aiospawn.run(["sh", "-c", "sleep 0.05; exit 3"])


async def test_status_survives_signal_death(backend):
    with Disturbance("waitpid_thread"):
        process = await aiospawn.create_subprocess_exec("sleep", "30")
        process.send_signal(signal.SIGUSR1)
        returncode = await process.wait()
    if KEEPS_STATUS:
        assert returncode == -signal.SIGUSR1
    else:
        assert returncode in (-signal.SIGUSR1, None)


# -- output is byte-exact ------------------------------------------------------------------------


async def hashed_random_output(size: int) -> tuple[int, str, str]:
    """Return (length, parent's sha256, child's sha256) of size random bytes sent through stdout."""
    result = await aiospawn.run(
        ["bash", "-c", f"head -c {size} /dev/urandom | tee >(sha256sum >&2)"], capture_output=True
    )
    child_hash = result.stderr.split()[0].decode()
    return len(result.stdout), hashlib.sha256(result.stdout).hexdigest(), child_hash


async def test_output_64mib_exact(backend):
    length, parent_hash, child_hash = await hashed_random_output(64 * MIB)
    assert length == 64 * MIB
    assert parent_hash == child_hash


@pytest.mark.slow
async def test_output_1gib_exact():
    length, parent_hash, child_hash = await hashed_random_output(1 << 30)
    assert length == 1 << 30
    assert parent_hash == child_hash


async def test_output_nul_bytes(backend):
    data = b"\0" * 1000 + bytes(range(256)) * 300 + b"\0"
    result = await aiospawn.run(["cat"], input=data, capture_output=True)
    assert result.stdout == data


async def test_output_stdout_closed_early(backend):
    result = await aiospawn.run(
        ["sh", "-c", "printf 'before\\0close'; exec 1>&-; sleep 0.2; echo after >&2; exit 4"],
        capture_output=True,
    )
    assert result.stdout == b"before\0close"
    assert result.stderr == b"after\n"
    assert result.returncode == 4


async def test_output_grandchild_after_exit(backend):
    result = await aiospawn.run(["sh", "-c", "(sleep 0.3; echo late) & echo early"], stdout=PIPE)
    assert result.stdout == b"early\nlate\n"
    assert result.returncode == 0


async def test_communicate_grandchild_after_exit(backend):
    process = await aiospawn.create_subprocess_exec(
        "sh", "-c", "(sleep 0.3; echo late) & echo early", stdout=PIPE
    )
    output, _ = await process.communicate()
    assert output == b"early\nlate\n"
    assert process.returncode == 0


async def test_communicate_binary_exact(backend):
    data = os.urandom(3 * MIB) + b"\0\0\0"
    process = await aiospawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    output, _ = await process.communicate(data)
    assert output == data
