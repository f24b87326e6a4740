"""Shared fixtures: a leak check around every test, the backend matrix and uvloop.

The leak check compares the open fds and the child processes of the test
process before and after each test, including the teardown of the event
loop, so a test passes only if aiospawn left nothing behind.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import os
import signal
import time

import pytest
import uvloop

import aiospawn
from aiospawn import _capabilities

BACKENDS = ("clone3", "clone", "posix_spawn")

__WALL = 0x40000000
SETTLE_SECONDS = 1.0
SETTLE_STEP = 0.02


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_loops: run the test under asyncio's own event loop and under uvloop"
    )
    # libuv opens a pipe for its signal handling with the first loop and
    # keeps it for the life of the process. Open it now, before any test
    # takes its snapshot, so it is not mistaken for a leak of aiospawn.
    uvloop.new_event_loop().close()
    # A shell that starts the suite as a background job sets SIGINT to
    # SIG_IGN, and every child would inherit that, as it does from
    # subprocess: the tests that interrupt a child need Python's handler.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# -- event loops ---------------------------------------------------------------

# Since pytest-asyncio 1.4 this hook replaces overriding the event_loop_policy
# fixture, which is deprecated. Tests marked both_loops run once per factory.
# The others keep the default loop and their plain names.
_DEFAULT_LOOP = {"asyncio": asyncio.new_event_loop}
_BOTH_LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item):
    if item.get_closest_marker("both_loops") is not None:
        return _BOTH_LOOPS
    return _DEFAULT_LOOP


# -- open fds and children of this process ----------------------------------------


def open_fds() -> dict[int, str]:
    """Map each open fd of this process to what it points at."""
    listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        found = {}
        for name in os.listdir(listing):
            fd = int(name)
            if fd == listing:
                continue
            try:
                found[fd] = os.readlink(name, dir_fd=listing)
            except FileNotFoundError:
                continue  # closed after the listing was read
        return found
    finally:
        os.close(listing)


def child_pids() -> set[int]:
    """Every child of this process, alive or zombie, whichever thread created it."""
    pids: set[int] = set()
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as handle:
                pids.update(int(word) for word in handle.read().split())
        except FileNotFoundError:
            continue  # the thread ended
    return pids


def waitable_child() -> int | None:
    """Return the pid of a child whose exit is waiting to be collected, without collecting it."""
    try:
        result = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT | __WALL)
    except ChildProcessError:
        return None
    return None if result is None else result.si_pid


def _describe_pid(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError as error:
        return f"{pid} ({errno.errorcode.get(error.errno, error.errno)})"
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 2]
    return f"{pid} {name} state {state}"


def _leaks(fds_before: dict[int, str], children_before: set[int]) -> list[str]:
    problems = []
    for fd, target in sorted(open_fds().items()):
        if fds_before.get(fd) != target:
            problems.append(f"fd {fd} -> {target} left open")
    for pid in sorted(child_pids() - children_before):
        problems.append(f"child {_describe_pid(pid)} left behind")
    pid = waitable_child()
    if pid is not None and pid not in children_before:
        problems.append(f"child {_describe_pid(pid)} exited but was never reaped")
    return problems


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail the test if it leaves a new fd open or a child of this process behind.

    Autouse, so it is set up before pytest-asyncio's event loop runner and
    checks after that loop has been closed.
    """
    fds_before = open_fds()
    children_before = child_pids()
    yield
    deadline = time.monotonic() + SETTLE_SECONDS
    problems = _leaks(fds_before, children_before)
    while problems and time.monotonic() < deadline:
        time.sleep(SETTLE_STEP)
        problems = _leaks(fds_before, children_before)
    if problems:
        pytest.fail("leaked after the test: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def live_children():
    """The function that lists this process's children, for tests that check mid-way."""
    return child_pids


# -- backends --------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Force one spawn backend for the test, or skip if this kernel cannot run it."""
    name = request.param
    monkeypatch.setenv("AIOSPAWN_BACKEND", name)
    _capabilities.reset()
    try:
        chosen = aiospawn.capabilities()
    except aiospawn.BackendUnavailableError as error:
        _capabilities.reset()
        pytest.skip(f"backend {name} cannot run on this machine: {error}")
    assert chosen.backend == name
    yield name
    _capabilities.reset()
