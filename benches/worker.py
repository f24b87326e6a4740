"""One benchmark measurement, run by compare.py in a process of its own.

Usage: python worker.py METHOD WORKLOAD COUNT

Spawns COUNT children one after the other and prints one JSON line with
wall and parent CPU microseconds per spawn. A separate process per
measurement keeps methods from disturbing each other (loop state, caches,
memory).
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time

TRUE = ["/bin/true"]
ECHO = ["/bin/echo", "hello"]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _aiospawn(workload: str, count: int) -> None:
    import aiospawn

    if workload == "true":
        for _ in range(count):
            await aiospawn.run(TRUE)
    else:
        for _ in range(count):
            result = await aiospawn.run(ECHO, stdout=aiospawn.PIPE)
            assert result.stdout == b"hello\n"


async def _asyncio(workload: str, count: int) -> None:
    if workload == "true":
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(*TRUE)
            await process.wait()
    else:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(*ECHO, stdout=asyncio.subprocess.PIPE)
            stdout, _ = await process.communicate()
            assert stdout == b"hello\n"


async def _aiospawn_exec(workload: str, count: int) -> None:
    import aiospawn

    if workload == "true":
        for _ in range(count):
            process = await aiospawn.create_subprocess_exec(*TRUE)
            await process.wait()
    else:
        for _ in range(count):
            process = await aiospawn.create_subprocess_exec(*ECHO, stdout=aiospawn.PIPE)
            stdout, _ = await process.communicate()
            assert stdout == b"hello\n"


def _subprocess(workload: str, count: int) -> None:
    if workload == "true":
        for _ in range(count):
            subprocess.run(TRUE)
    else:
        for _ in range(count):
            result = subprocess.run(ECHO, stdout=subprocess.PIPE)
            assert result.stdout == b"hello\n"


def _run_async(coroutine_function, workload: str, count: int, use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        # One untimed spawn first, so one-time setup (probes, imports) is excluded.
        loop.run_until_complete(coroutine_function(workload, 1))
        start_wall, start_cpu = time.perf_counter(), _cpu_seconds()
        loop.run_until_complete(coroutine_function(workload, count))
        report(start_wall, start_cpu, count)
    finally:
        loop.close()


def report(start_wall: float, start_cpu: float, count: int) -> None:
    wall = (time.perf_counter() - start_wall) / count * 1e6
    cpu = (_cpu_seconds() - start_cpu) / count * 1e6
    print(json.dumps({"wall_us": wall, "cpu_us": cpu}))


METHODS = {
    "aiospawn": lambda w, n: _run_async(_aiospawn, w, n, False),
    "aiospawn+uvloop": lambda w, n: _run_async(_aiospawn, w, n, True),
    "aiospawn exec": lambda w, n: _run_async(_aiospawn_exec, w, n, False),
    "asyncio": lambda w, n: _run_async(_asyncio, w, n, False),
    "asyncio+uvloop": lambda w, n: _run_async(_asyncio, w, n, True),
}


def main() -> None:
    method, workload, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if workload not in ("true", "echo"):
        raise SystemExit(f"unknown workload {workload!r}: use true or echo")
    if method == "subprocess":
        _subprocess(workload, 1)
        start_wall, start_cpu = time.perf_counter(), _cpu_seconds()
        _subprocess(workload, count)
        report(start_wall, start_cpu, count)
        return
    if method not in METHODS:
        raise SystemExit(f"unknown method {method!r}: use one of {', '.join(METHODS)} or subprocess")
    METHODS[method](workload, count)


if __name__ == "__main__":
    main()
