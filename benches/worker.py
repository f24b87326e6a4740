"""One benchmark measurement, run by compare.py in a process of its own.

Usage: python worker.py SPEC_JSON
       python worker.py --probe

SPEC_JSON names a method of catalog.py, a measure and its sizes; the
worker prints one JSON line with the measured fields. A process per
measurement keeps methods from disturbing each other (loop state, caches,
threads, memory). --probe prints the interpreter's version, which
optional modules import, and their versions.

Every measure is written once, as a coroutine over an "API" (how one
method spawns and awaits a child) and a "loop" (what drives it). Blocking
APIs are wrapped in coroutines that never suspend, driven without any
event loop, so they share the same code.
"""

from __future__ import annotations

import collections
import gc
import json
import mmap
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog import METHODS_BY_NAME, Method  # noqa: E402

TRUE = ["/bin/true"]
ECHO = ["/bin/echo", "hello"]
READ_CHUNK = 256 * 1024
OPTIONAL_MODULES = ("aiospawn", "uvloop", "trio", "anyio", "matplotlib")


# -- loops: what drives a method's coroutines --------------------------------------


class AsyncioLoop:
    """asyncio's own event loop, or uvloop's."""

    def __init__(self, use_uvloop: bool) -> None:
        self.use_uvloop = use_uvloop

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        import asyncio

        if self.use_uvloop:
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            return loop.run_until_complete(main())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def gather(self, functions: list[Callable[[], Awaitable[Any]]]) -> None:
        import asyncio

        await asyncio.gather(*(function() for function in functions))

    async def beside(
        self, background: Callable[[], Awaitable[Any]], main: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run main with background as a concurrent task, cancelled when main ends."""
        import asyncio

        task = asyncio.ensure_future(background())
        try:
            return await main()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_readable(self, fd: int) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def ready() -> None:
            if not future.done():
                future.set_result(None)

        loop.add_reader(fd, ready)
        try:
            await future
        finally:
            loop.remove_reader(fd)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


class TrioLoop:
    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        import trio

        return trio.run(main)

    async def gather(self, functions: list[Callable[[], Awaitable[Any]]]) -> None:
        import trio

        async with trio.open_nursery() as nursery:
            for function in functions:
                nursery.start_soon(function)

    async def beside(
        self, background: Callable[[], Awaitable[Any]], main: Callable[[], Awaitable[Any]]
    ) -> Any:
        import trio

        async with trio.open_nursery() as nursery:
            nursery.start_soon(background)
            try:
                return await main()
            finally:
                nursery.cancel_scope.cancel()

    async def wait_readable(self, fd: int) -> None:
        import trio

        await trio.lowlevel.wait_readable(fd)

    async def sleep(self, seconds: float) -> None:
        import trio

        await trio.sleep(seconds)


class NoLoop:
    """Drives coroutines of blocking APIs, which never suspend."""

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        coroutine = main()
        try:
            coroutine.send(None)  # type: ignore[attr-defined]
        except StopIteration as stop:
            return stop.value
        coroutine.close()  # type: ignore[attr-defined]
        raise RuntimeError("a blocking method suspended: it needs an event loop")


def make_loop(name: str | None) -> Any:
    if name == "asyncio":
        return AsyncioLoop(False)
    if name == "uvloop":
        return AsyncioLoop(True)
    if name == "trio":
        return TrioLoop()
    if name is None:
        return NoLoop()
    raise SystemExit(f"unknown loop {name!r}")


# -- APIs: how one method spawns and awaits children ---------------------------------
#
# Each API class has these methods:
#   wait(argv)          run argv with inherited stdio and await its exit.
#   capture(argv)       run argv and return its stdout.
#   stream(argv)        read argv's stdout to EOF in chunks and return the byte count.
#   many(argv, n, k)    run argv n times with at most k children alive at once.


class AsyncApi:
    def __init__(self, loop: Any) -> None:
        self.loop = loop

    async def many(self, argv: list[str], count: int, limit: int) -> None:
        remaining = count

        async def lane() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await self.wait(argv)

        await self.loop.gather([lane] * min(limit, count))

    async def wait(self, argv: list[str]) -> None:
        raise NotImplementedError

    async def capture(self, argv: list[str]) -> bytes:
        raise NotImplementedError

    async def stream(self, argv: list[str]) -> int:
        raise NotImplementedError


class AiospawnRun(AsyncApi):
    async def wait(self, argv: list[str]) -> None:
        import aiospawn

        await aiospawn.run(argv)

    async def capture(self, argv: list[str]) -> bytes:
        import aiospawn

        return (await aiospawn.run(argv, stdout=aiospawn.PIPE)).stdout

    async def stream(self, argv: list[str]) -> int:
        raise NotImplementedError("run() collects the output; it cannot stream it")


class AiospawnRunAllOptions(AsyncApi):
    """aiospawn.run with every housekeeping option beyond subprocess enabled.

    Compared with the plain "aiospawn run" row, it shows what the extra
    steps in the child (setrlimit, the parent-death signal and its check,
    a new process group, umask, chdir) cost per spawn.
    """

    options: dict[str, Any] = {
        "rlimits": {"RLIMIT_NOFILE": 1024, "RLIMIT_CORE": 0},
        "pdeathsig": 9,
        "kill_tree": True,
        "umask": 0o022,
        "cwd": "/",
    }

    async def wait(self, argv: list[str]) -> None:
        import aiospawn

        await aiospawn.run(argv, **self.options)

    async def capture(self, argv: list[str]) -> bytes:
        import aiospawn

        return (await aiospawn.run(argv, stdout=aiospawn.PIPE, **self.options)).stdout

    async def stream(self, argv: list[str]) -> int:
        raise NotImplementedError("run() collects the output; it cannot stream it")


class AiospawnOpenProcess(AsyncApi):
    """aiospawn.open_process, the anyio.abc.Process, on whichever loop drives it."""

    async def wait(self, argv: list[str]) -> None:
        import aiospawn

        process = await aiospawn.open_process(argv, stdin=None, stdout=None, stderr=None)
        await process.wait()

    async def capture(self, argv: list[str]) -> bytes:
        import aiospawn

        process = await aiospawn.open_process(argv, stdin=None, stderr=None)
        chunks = []
        async with process:
            async for chunk in process.stdout:
                chunks.append(chunk)
        return b"".join(chunks)

    async def stream(self, argv: list[str]) -> int:
        import aiospawn

        process = await aiospawn.open_process(argv, stdin=None, stderr=None)
        total = 0
        async with process:
            async for chunk in process.stdout:
                total += len(chunk)
        return total


class AsyncioStyleExec(AsyncApi):
    """create_subprocess_exec + wait/communicate, from a module with that API."""

    def __init__(self, loop: Any, module_name: str) -> None:
        super().__init__(loop)
        self.module = __import__(module_name)

    async def wait(self, argv: list[str]) -> None:
        process = await self.module.create_subprocess_exec(*argv)
        await process.wait()

    async def capture(self, argv: list[str]) -> bytes:
        process = await self.module.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
        stdout, _ = await process.communicate()
        return stdout

    async def stream(self, argv: list[str]) -> int:
        process = await self.module.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
        total = 0
        while True:
            chunk = await process.stdout.read(READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
        await process.wait()
        return total


class TrioRunProcess(AsyncApi):
    # stdin=None: the child inherits stdin as with every other method
    # (trio's default feeds it an empty pipe).
    async def wait(self, argv: list[str]) -> None:
        import trio

        await trio.run_process(argv, stdin=None, check=False)

    async def capture(self, argv: list[str]) -> bytes:
        import trio

        return (await trio.run_process(argv, stdin=None, capture_stdout=True, check=False)).stdout

    async def stream(self, argv: list[str]) -> int:
        import trio

        process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE)
        total = 0
        try:
            while True:
                chunk = await process.stdout.receive_some(READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
            await process.wait()
        finally:
            await process.stdout.aclose()
            if process.returncode is None:
                process.kill()
                await process.wait()
        return total


class AnyioRunProcess(AsyncApi):
    async def wait(self, argv: list[str]) -> None:
        import anyio

        await anyio.run_process(argv, stdout=None, stderr=None, check=False)

    async def capture(self, argv: list[str]) -> bytes:
        import anyio

        return (await anyio.run_process(argv, stderr=None, check=False)).stdout

    async def stream(self, argv: list[str]) -> int:
        import anyio

        total = 0
        async with await anyio.open_process(argv, stdin=None, stderr=None) as process:
            async for chunk in process.stdout:
                total += len(chunk)
            await process.wait()
        return total


class Idle(AsyncApi):
    """A stand-in API that spawns nothing and sleeps 0.5 ms in place of each spawn."""

    async def wait(self, argv: list[str]) -> None:
        await self.loop.sleep(0.0005)


class BlockingApi:
    """Blocking calls behind coroutines that never suspend."""

    def start(self, argv: list[str]) -> Any:
        raise NotImplementedError

    def join(self, handle: Any) -> None:
        raise NotImplementedError

    async def many(self, argv: list[str], count: int, limit: int) -> None:
        alive: collections.deque[Any] = collections.deque()
        for _ in range(count):
            if len(alive) >= limit:
                self.join(alive.popleft())
            alive.append(self.start(argv))
        while alive:
            self.join(alive.popleft())


class Subprocess(BlockingApi):
    async def wait(self, argv: list[str]) -> None:
        subprocess.run(argv)

    async def capture(self, argv: list[str]) -> bytes:
        return subprocess.run(argv, stdout=subprocess.PIPE).stdout

    async def stream(self, argv: list[str]) -> int:
        total = 0
        with subprocess.Popen(argv, stdout=subprocess.PIPE) as process:
            assert process.stdout is not None
            while True:
                chunk = process.stdout.read1(READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
        return total

    def start(self, argv: list[str]) -> Any:
        return subprocess.Popen(argv)

    def join(self, handle: Any) -> None:
        handle.wait()


class PosixSpawn(BlockingApi):
    async def wait(self, argv: list[str]) -> None:
        os.waitpid(os.posix_spawn(argv[0], argv, os.environ), 0)

    def _piped(self, argv: list[str]) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        try:
            pid = os.posix_spawn(
                argv[0],
                argv,
                os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)],
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return pid, read_end

    async def capture(self, argv: list[str]) -> bytes:
        pid, read_end = self._piped(argv)
        chunks = []
        try:
            while chunk := os.read(read_end, 65536):
                chunks.append(chunk)
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
        return b"".join(chunks)

    async def stream(self, argv: list[str]) -> int:
        pid, read_end = self._piped(argv)
        total = 0
        try:
            while chunk := os.read(read_end, READ_CHUNK):
                total += len(chunk)
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
        return total

    def start(self, argv: list[str]) -> Any:
        return os.posix_spawn(argv[0], argv, os.environ)

    def join(self, handle: Any) -> None:
        os.waitpid(handle, 0)


APIS: dict[str, Callable[[Any], Any]] = {
    "aiospawn.run": AiospawnRun,
    "aiospawn.exec": lambda loop: AsyncioStyleExec(loop, "aiospawn"),
    "aiospawn.open_process": AiospawnOpenProcess,
    "aiospawn.run.all_options": AiospawnRunAllOptions,
    "asyncio.exec": lambda loop: AsyncioStyleExec(loop, "asyncio"),
    "trio.run_process": TrioRunProcess,
    "anyio.run_process": AnyioRunProcess,
    "idle": Idle,
    "subprocess": lambda loop: Subprocess(),
    "os.posix_spawn": lambda loop: PosixSpawn(),
}


# -- measures --------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sequential(api: Any, spec: dict[str, Any]) -> dict[str, float]:
    """Spawn one child after the other; wall and parent CPU per spawn."""
    capture = spec["measure"] == "echo"
    argv = ECHO if capture else TRUE
    count, limit = spec["count"], spec["time_limit"]

    async def once() -> None:
        if capture:
            assert await api.capture(argv) == b"hello\n"
        else:
            await api.wait(argv)

    await once()  # one-time set-up (probes, imports, watchers) stays out of the figures
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    done = 0
    while done < count and time.perf_counter() - start_wall < limit:
        await once()
        done += 1
    wall = time.perf_counter() - start_wall
    cpu = cpu_seconds() - start_cpu
    return {"wall_us": wall / done * 1e6, "cpu_us": cpu / done * 1e6, "n": done}


async def wakeup(api: Any, spec: dict[str, Any]) -> dict[str, float]:
    """The child stamps the clock just before exiting; we stamp when the await returns."""
    argv = [spec["helper"], "stamp", spec["stamp_file"]]
    fd = os.open(spec["stamp_file"], os.O_RDONLY | os.O_CLOEXEC)
    samples = []
    try:
        await api.wait(argv)
        deadline = time.monotonic() + spec["time_limit"]
        for _ in range(spec["count"]):
            if time.monotonic() > deadline:
                break
            await api.wait(argv)
            woken = time.monotonic_ns()
            stamp = int.from_bytes(os.pread(fd, 8, 0), sys.byteorder, signed=True)
            samples.append(woken - stamp)
    finally:
        os.close(fd)
    samples.sort()
    return {
        "latency_us": samples[len(samples) // 2] / 1e3,
        "p90_us": samples[len(samples) * 9 // 10] / 1e3,
        "n": len(samples),
    }


async def stall(api: Any, loop: Any, spec: dict[str, Any]) -> dict[str, float]:
    """Measure how late a task wakes for each tick of a 1 ms clock while children are spawned.

    The clock is a helper process that writes its CLOCK_MONOTONIC time to
    a pipe every millisecond; the task stamps the time when it resumes.
    The difference is how late the loop ran it. An external clock is used
    because the loops' own timers round sleeps up to whole milliseconds.
    """
    argv = TRUE if spec["child"] == "true" else [sys.executable, "-c", "pass"]
    count, interval_us = spec["count"], spec["interval_us"]
    max_ticks = int((spec["time_limit"] + 30) * 1e6 / interval_us)
    ticker = subprocess.Popen(
        [spec["helper"], "tick", str(interval_us), str(max_ticks)],
        stdout=subprocess.PIPE,
    )
    assert ticker.stdout is not None
    fd = ticker.stdout.fileno()
    os.set_blocking(fd, False)
    lateness: list[int] = []
    # Ticks during which the loop's thread was not preempted: on a shared
    # machine, waiting for a CPU is not a stall of the loop's own making.
    unpreempted: list[int] = []
    recording = False

    async def tick_task() -> None:
        switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
        while True:
            await loop.wait_readable(fd)
            resumed = time.monotonic_ns()
            now_switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
            preempted, switches = now_switches != switches, now_switches
            try:
                data = os.read(fd, 8 * 1024)
            except BlockingIOError:
                continue
            if not data:
                return
            if recording:
                for offset in range(0, len(data) - 7, 8):
                    late = resumed - int.from_bytes(data[offset : offset + 8], sys.byteorder)
                    lateness.append(late)
                    if not preempted:
                        unpreempted.append(late)

    async def spawns() -> tuple[int, float]:
        nonlocal recording
        await api.wait(argv)
        await loop.sleep(0.02)  # let the first ticks arrive
        recording = True
        start = time.perf_counter()
        done = 0
        while done < count and time.perf_counter() - start < spec["time_limit"]:
            await api.wait(argv)
            done += 1
        recording = False
        return done, time.perf_counter() - start

    try:
        done, elapsed = await loop.beside(tick_task, spawns)
    finally:
        ticker.stdout.close()
        ticker.kill()
        ticker.wait()
    if not lateness:
        raise RuntimeError("the ticker delivered no tick while children were spawned")
    lateness.sort()
    unpreempted.sort()
    result = {
        "p99_us": percentile(lateness, 99) / 1e3,
        "worst_us": lateness[-1] / 1e3,
        "p50_us": percentile(lateness, 50) / 1e3,
        "ticks": len(lateness),
        "preempted": len(lateness) - len(unpreempted),
        "n": done,
        "spawn_us": elapsed / done * 1e6,
    }
    if unpreempted:
        result["p99_own_us"] = percentile(unpreempted, 99) / 1e3
        result["worst_own_us"] = unpreempted[-1] / 1e3
    return result


def percentile(ordered: list[int], percent: int) -> int:
    return ordered[min(len(ordered) - 1, len(ordered) * percent // 100)]


class Sampler:
    """Samples this process's thread and fd counts from a thread of its own."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.threads = 0
        self.fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _sample(self) -> None:
        # The sampler thread itself and the listing's own fd are not counted.
        self.threads = max(self.threads, len(os.listdir("/proc/self/task")) - 1)
        self.fds = max(self.fds, len(os.listdir("/proc/self/fd")) - 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


async def concurrent(api: Any, spec: dict[str, Any]) -> dict[str, float]:
    count = spec["count"]
    argv = ["/bin/sleep", spec["sleep"]]
    with Sampler(0.01) as sampler:
        start = time.perf_counter()
        await api.many(argv, count, count)
        wall = time.perf_counter() - start
    return {"wall_s": wall, "threads": sampler.threads, "fds": sampler.fds}


async def inflight(api: Any, spec: dict[str, Any]) -> dict[str, float]:
    await api.wait(TRUE)
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    await api.many(TRUE, spec["count"], spec["inflight"])
    wall = time.perf_counter() - start_wall
    cpu = cpu_seconds() - start_cpu
    return {"per_s": spec["count"] / wall, "cpu_us": cpu / spec["count"] * 1e6, "n": spec["count"]}


async def stdout(api: Any, spec: dict[str, Any]) -> dict[str, float]:
    """Read a child's stdout to EOF, streamed in chunks or collected in memory."""

    async def read(argv: list[str]) -> int:
        if spec.get("collect"):
            return len(await api.capture(argv))
        return await api.stream(argv)

    await read([spec["helper"], "write", "65536"])
    start = time.perf_counter()
    total = await read([spec["helper"], "write", str(spec["bytes"])])
    wall = time.perf_counter() - start
    if total != spec["bytes"]:
        raise RuntimeError(f"read {total} bytes, expected {spec['bytes']}")
    return {"mb_s": total / wall / 1e6, "bytes": total}


def add_ballast(mib: int) -> Any:
    """Map and populate mib MiB of private memory; return the mapping."""
    if mib <= 0:
        return None
    size = mib << 20
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    ballast = mmap.mmap(-1, size, flags=flags)
    ballast[::4096] = b"\1" * (size // 4096)  # every page written, populated or not
    return ballast


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    method: Method = METHODS_BY_NAME[spec["method"]]
    loop = make_loop(method.loop)
    api = APIS[method.api](loop)
    name = spec["measure"]
    raise_fd_limit()
    ballast = add_ballast(spec.get("ballast_mib", 0))
    gc.collect()

    async def main() -> dict[str, Any]:
        if name in ("true", "echo", "big-parent"):
            return await sequential(api, spec)
        if name == "wakeup":
            return await wakeup(api, spec)
        if name == "stall":
            return await stall(api, loop, spec)
        if name == "concurrent":
            return await concurrent(api, spec)
        if name == "inflight":
            return await inflight(api, spec)
        if name == "stdout":
            return await stdout(api, spec)
        raise SystemExit(f"unknown measure {name!r}")

    try:
        return loop.run(main)
    finally:
        if ballast is not None:
            ballast.close()


def probe() -> dict[str, Any]:
    from importlib import metadata, util

    found = {}
    for module in OPTIONAL_MODULES:
        if util.find_spec(module) is None:
            continue
        try:
            found[module] = metadata.version(module)
        except metadata.PackageNotFoundError:
            found[module] = "?"
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "modules": found,
    }
    if "aiospawn" in found:
        try:
            import aiospawn

            facts["aiospawn_backend"] = aiospawn.capabilities().backend
        except Exception as error:  # noqa: BLE001 - reported, not raised
            facts["aiospawn_backend"] = f"unavailable: {error}"
    return facts


def main() -> None:
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(probe()))
        return
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    result = measure(json.loads(sys.argv[1]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
