"""What the benchmark compares: the methods (rows) and the measures.

Shared by compare.py, which runs the measurements, and worker.py, which
takes one of them in a process of its own.

A method is a way of spawning and awaiting children: a mode of the C
program floor.c, or a Python API (``api``, implemented in worker.py)
driven by an event loop (``loop``: "asyncio", "uvloop", "trio", or None
for blocking code). Adding a row is adding one ``Method`` to ``METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    name: str
    """The row label, unique."""
    api: str
    """For C methods the floor.c mode; else a key of worker.APIS."""
    loop: str | None = "asyncio"
    """The event loop that drives the API; None for blocking APIs and C."""
    kind: str = "python"
    """"c" (a floor.c mode) or "python" (worker.py)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the measuring process."""
    needs: tuple[str, ...] = ()
    """Modules that must be importable, else the row is left out."""
    main: bool = False
    """In the default run and the smoke run; the others only with --full."""
    measures: frozenset[str] | None = None
    """Measures this row takes part in; None means every one that fits."""

    @property
    def is_async(self) -> bool:
        return self.loop is not None


def _c(name: str, mode: str, main: bool = True) -> Method:
    return Method(name, api=mode, loop=None, kind="c", main=main)


# Where the backend can make a difference: creating the child and how long
# the parent is held. Exits, pipes and concurrency go through the same code.
_BACKEND_MEASURES = frozenset({"true", "echo", "wakeup", "stall", "inflight", "big-parent"})


def _backend(name: str, api: str, backend: str) -> Method:
    return Method(name, api=api, env={"AIOSPAWN_BACKEND": backend}, measures=_BACKEND_MEASURES)


FLOOR = "C floor"
ASYNCIO = "asyncio"

METHODS: tuple[Method, ...] = (
    # The floor and reference C loops.
    _c(FLOOR, "clone"),
    _c("C posix_spawn", "posix_spawn"),
    _c("C vfork", "vfork"),
    _c("C fork", "fork"),
    # aiospawn with the backend it picks by itself (clone3 here), on both loops.
    Method("aiospawn run", api="aiospawn.run", main=True),
    Method("aiospawn run, uvloop", api="aiospawn.run", loop="uvloop", needs=("uvloop",), main=True),
    Method("aiospawn exec", api="aiospawn.exec", main=True),
    Method("aiospawn exec, uvloop", api="aiospawn.exec", loop="uvloop", needs=("uvloop",), main=True),
    Method("aiospawn run, trio", api="aiospawn.run", loop="trio", needs=("trio",), main=True),
    Method("aiospawn open_process, trio", api="aiospawn.open_process", loop="trio", needs=("trio",)),
    Method("aiospawn open_process", api="aiospawn.open_process"),
    Method(
        "aiospawn run, all options",
        api="aiospawn.run.all_options",
        measures=frozenset({"true", "echo", "stall"}),
    ),
    # aiospawn with each backend forced, on asyncio's loop.
    _backend("aiospawn run [clone3]", "aiospawn.run", "clone3"),
    _backend("aiospawn run [clone]", "aiospawn.run", "clone"),
    _backend("aiospawn run [posix_spawn]", "aiospawn.run", "posix_spawn"),
    _backend("aiospawn exec [clone3]", "aiospawn.exec", "clone3"),
    _backend("aiospawn exec [clone]", "aiospawn.exec", "clone"),
    _backend("aiospawn exec [posix_spawn]", "aiospawn.exec", "posix_spawn"),
    # Peers.
    Method(ASYNCIO, api="asyncio.exec", main=True),
    Method("asyncio, uvloop", api="asyncio.exec", loop="uvloop", needs=("uvloop",), main=True),
    Method("trio", api="trio.run_process", loop="trio", needs=("trio",), main=True),
    Method("anyio, asyncio", api="anyio.run_process", needs=("anyio",), main=True),
    Method("anyio, trio", api="anyio.run_process", loop="trio", needs=("anyio", "trio"), main=True),
    Method("subprocess", api="subprocess", loop=None, main=True),
    Method("os.posix_spawn", api="os.posix_spawn", loop=None, main=True),
    # The ticker with no spawns at all: what the stall measure reads on an idle loop.
    Method("no spawns, asyncio", api="idle", main=True, measures=frozenset({"stall"})),
)

METHODS_BY_NAME = {method.name: method for method in METHODS}

LEGEND = {
    FLOOR: "benches/floor.c: clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) on its own stack, execve, "
    "poll on the pidfd, waitid(P_PIDFD)",
    "C posix_spawn": "floor.c with glibc posix_spawn, then pidfd_open",
    "C vfork": "floor.c with vfork, then pidfd_open",
    "C fork": "floor.c with fork, then pidfd_open",
    "aiospawn run": "await aiospawn.run(...) (stdout=PIPE to capture)",
    "aiospawn exec": "aiospawn.create_subprocess_exec + wait() / communicate() / stdout.read()",
    "aiospawn open_process": "aiospawn.open_process + wait() / reading stdout, on the named loop",
    "aiospawn run, all options": "aiospawn.run with rlimits (2), pdeathsig, kill_tree, umask and cwd",
    "[backend]": "AIOSPAWN_BACKEND forced to that backend",
    ASYNCIO: "asyncio.create_subprocess_exec + wait() / communicate() / stdout.read()",
    "trio": "trio.run_process (trio.lowlevel.open_process to stream)",
    "anyio": "anyio.run_process (anyio.open_process to stream), on the named backend",
    "subprocess": "subprocess.run; Popen objects awaited oldest first when several run at once",
    "os.posix_spawn": "os.posix_spawn + os.waitpid, oldest first when several run at once",
    "no spawns": "the stall ticker on an idle asyncio loop: what the measure itself reads",
}


@dataclass(frozen=True)
class Measure:
    name: str
    """The name given to --only."""
    title: str
    metric: str
    """The headline field of a measurement's JSON."""
    unit: str
    higher_is_better: bool = False
    heavy: bool = False
    """Takes seconds per measurement: fewer rounds in the full run."""
    for_c: bool = True
    """The C modes take part."""
    for_blocking: bool = True
    """Blocking Python APIs (subprocess, os.posix_spawn) take part."""

    def applies(self, method: Method) -> bool:
        if method.measures is not None:
            return self.name in method.measures
        if method.kind == "c":
            return self.for_c
        if not method.is_async:
            return self.for_blocking
        return True


MEASURES: tuple[Measure, ...] = (
    Measure("true", "Sequential spawn + wait of /bin/true", "wall_us", "µs/spawn"),
    Measure("echo", "Sequential spawn of echo with stdout captured", "wall_us", "µs/spawn"),
    Measure("wakeup", "Exit-to-wakeup latency", "latency_us", "µs"),
    Measure(
        "stall",
        "Event-loop stall while spawning (1 ms ticker)",
        "p99_us",
        "µs",
        for_c=False,
        for_blocking=False,
    ),
    Measure("concurrent", "Concurrent sleep children", "wall_s", "s", heavy=True),
    Measure("inflight", "Throughput with spawns in flight", "per_s", "spawns/s", higher_is_better=True),
    Measure("big-parent", "Spawn from a big parent", "wall_us", "µs/spawn", heavy=True),
    Measure("stdout", "Stdout throughput", "mb_s", "MB/s", higher_is_better=True, heavy=True),
)

MEASURES_BY_NAME = {measure.name: measure for measure in MEASURES}
