"""Tests of what the peers lack: rusage, rlimits, pdeathsig, kill_tree, cgroup and PTY."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import pytest

import aiospawn
from aiospawn import PIPE, PTY, run

PYTHON = sys.executable


def python(code: str) -> list[str]:
    return [PYTHON, "-c", textwrap.dedent(code)]


def gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone_or_zombie(pid):
            return True
        time.sleep(0.02)
    return False


def cgroup_available() -> bool:
    return aiospawn.capabilities().cgroup.startswith("available")


needs_cgroup = pytest.mark.skipif(
    "not cgroup_available()", reason="no writable cgroup v2 hierarchy with cgroup.kill here"
)


# -- resource usage ------------------------------------------------------------------


async def test_rusage_on_result():
    result = await run(python("x = bytearray(64 * 1024 * 1024); sum(range(3_000_000))"))
    usage = result.rusage
    assert isinstance(usage, aiospawn.ResourceUsage)
    assert usage.max_rss > 64 * 1024
    assert usage.user_time > 0
    assert usage.minor_faults > 1000


async def test_rusage_open_process():
    # cat runs until its stdin closes, so it cannot have been reaped yet.
    process = await aiospawn.open_process(["cat"], stdout=None, stderr=None)
    assert process.rusage is None
    await process.stdin.aclose()
    await process.wait()
    assert process.rusage is not None
    assert process.rusage.max_rss > 0
    await process.aclose()


# -- resource limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    "rlimits",
    [
        {"RLIMIT_NOFILE": 123},
        {"NOFILE": 123},
        {resource.RLIMIT_NOFILE: 123},
        {"RLIMIT_NOFILE": (123, 456)},
    ],
)
async def test_rlimits_forms(backend, rlimits):
    if backend == "posix_spawn":
        with pytest.raises(aiospawn.BackendUnavailableError, match="setrlimit"):
            await run(["true"], rlimits=rlimits)
        return
    result = await run(["sh", "-c", "ulimit -Sn"], capture_output=True, rlimits=rlimits)
    assert result.stdout == b"123\n"


async def test_rlimits_infinity():
    result = await run(
        ["sh", "-c", "ulimit -Sc"],
        capture_output=True,
        rlimits={"RLIMIT_CORE": (resource.RLIM_INFINITY, resource.RLIM_INFINITY)},
    )
    assert result.stdout == b"unlimited\n"


async def test_rlimits_applied_in_child():
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))"
    result = await run(python(code), capture_output=True, rlimits={"RLIMIT_NOFILE": (50, 60)})
    assert result.stdout == b"(50, 60)\n"
    assert resource.getrlimit(resource.RLIMIT_NOFILE) != (50, 60)


async def test_rlimits_failure_names_step():
    with pytest.raises(PermissionError, match="setrlimit RLIMIT_NOFILE"):
        await run(["true"], rlimits={"RLIMIT_NOFILE": (10, 1 << 40)})


@pytest.mark.parametrize(
    ("rlimits", "error"),
    [
        ({"RLIMIT_BOGUS": 1}, ValueError),
        ({"RLIMIT_NOFILE": (20, 10)}, ValueError),
        ({"RLIMIT_NOFILE": (1, 2, 3)}, ValueError),
        ({"RLIMIT_NOFILE": -5}, ValueError),
        ({"RLIMIT_NOFILE": "10"}, TypeError),
        ({3.5: 1}, TypeError),
        ([("RLIMIT_NOFILE", 1)], TypeError),
    ],
)
async def test_rlimits_invalid(rlimits, error):
    with pytest.raises(error):
        await run(["true"], rlimits=rlimits)


# -- parent-death signal -------------------------------------------------------------

_SPAWN_AND_DIE = """
    import asyncio, os, sys, aiospawn
    async def main():
        process = await aiospawn.create_subprocess_exec("sleep", "30", pdeathsig=int(sys.argv[1]))
        print(process.pid, flush=True)
        os._exit(0)
    asyncio.run(main())
"""


@pytest.mark.parametrize("death_signal", [signal.SIGKILL, signal.SIGTERM])
async def test_pdeathsig(death_signal):
    result = await run([*python(_SPAWN_AND_DIE), str(int(death_signal))], capture_output=True, check=True)
    grandchild = int(result.stdout)
    assert wait_gone(grandchild)


async def test_pdeathsig_open_process():
    process = await aiospawn.open_process(
        ["sleep", "30"], stdin=None, stdout=None, stderr=None, pdeathsig=signal.SIGTERM
    )
    with open(f"/proc/{process.pid}/status") as handle:
        assert "sleep" in handle.read()
    process.kill()
    await process.aclose()


@pytest.mark.parametrize("value", [0, 1000, -3])
async def test_pdeathsig_invalid(value):
    with pytest.raises(ValueError, match="pdeathsig"):
        await run(["true"], pdeathsig=value)


# -- process trees -----------------------------------------------------------------


async def test_kill_tree_timeout(tmp_path):
    marker = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        await run(["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"], kill_tree=True, timeout=0.5)
    assert time.monotonic() - started < 5
    grandchild = int(marker.read_text())
    assert wait_gone(grandchild)


async def test_kill_tree_new_group():
    code = "import os; print(os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid())"
    result = await run(python(code), capture_output=True, kill_tree=True)
    assert result.stdout == b"True False\n"


async def test_kill_tree_conflicting_group():
    with pytest.raises(ValueError, match="kill_tree"):
        await run(["true"], kill_tree=True, process_group=os.getpgid(0))


async def test_kill_tree_process_kill(tmp_path):
    marker = tmp_path / "pid"
    process = await aiospawn.open_process(
        ["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"],
        stdin=None,
        stdout=None,
        stderr=None,
        kill_tree=True,
    )
    while not marker.exists() or not marker.read_text().strip():
        await anyio.sleep(0.01)
    process.kill()
    assert await process.wait() == -signal.SIGKILL
    assert wait_gone(int(marker.read_text()))
    await process.aclose()


@needs_cgroup
async def test_cgroup_placement():
    result = await run(["cat", "/proc/self/cgroup"], capture_output=True, cgroup=True)
    line = next(line for line in result.stdout.decode().splitlines() if line.startswith("0::"))
    assert "/aiospawn-" in line
    path = aiospawn.capabilities().cgroup.split(" under ", 1)[1]
    assert not os.path.exists(os.path.join(path, line.split("/")[-1]))


@needs_cgroup
async def test_cgroup_kills_daemon(tmp_path):
    # A daemon leaves the process group with setsid, but not the cgroup.
    marker = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        await run(
            ["sh", "-c", f"setsid sh -c 'echo $$ > {marker}; exec sleep 30' & sleep 30"],
            cgroup=True,
            timeout=0.5,
        )
    assert wait_gone(int(marker.read_text()))


@needs_cgroup
async def test_cgroup_leftovers_killed(tmp_path):
    marker = tmp_path / "pid"
    result = await run(
        ["sh", "-c", f"setsid sh -c 'echo $$ > {marker}; exec sleep 30' & sleep 0.2; echo done"],
        cgroup=True,
        capture_output=True,
        timeout=10,
    )
    assert result.stdout == b"done\n"
    assert wait_gone(int(marker.read_text()))


@needs_cgroup
async def test_cgroup_open_process_kill(tmp_path):
    marker = tmp_path / "pid"
    process = await aiospawn.open_process(
        ["sh", "-c", f"setsid sh -c 'echo $$ > {marker}; exec sleep 30' & wait"],
        stdin=None,
        stdout=None,
        stderr=None,
        cgroup=True,
    )
    while not marker.exists() or not marker.read_text().strip():
        await anyio.sleep(0.01)
    process.kill()
    await process.wait()
    assert wait_gone(int(marker.read_text()))
    await process.aclose()


async def test_cgroup_needs_clone3(monkeypatch):
    from aiospawn import _capabilities

    monkeypatch.setenv("AIOSPAWN_BACKEND", "clone")
    _capabilities.reset()
    try:
        assert aiospawn.capabilities().cgroup.startswith("unavailable")
        if cgroup_available_anywhere():
            with pytest.raises(aiospawn.BackendUnavailableError, match="clone3"):
                await run(["true"], cgroup=True)
    finally:
        _capabilities.reset()


def cgroup_available_anywhere() -> bool:
    from aiospawn._cgroup import cgroup_support

    return cgroup_support().startswith("available")


async def test_cgroup_invalid_value():
    with pytest.raises(TypeError, match="cgroup"):
        await run(["true"], cgroup=3)


# -- pseudo-terminals --------------------------------------------------------------


async def test_pty_isatty():
    code = "import os; print(os.isatty(0), os.isatty(1), os.isatty(2))"
    result = await run(python(code), stdin=PTY, stdout=PTY, stderr=PTY)
    assert result.stdout == b"True True True\r\n"
    assert result.stderr is None


async def test_pty_controlling_terminal():
    # /dev/tty opens only with a controlling terminal; the child's group is in the foreground.
    code = "import os; os.close(os.open('/dev/tty', os.O_RDWR)); print(os.tcgetpgrp(1) == os.getpgrp())"
    result = await run(python(code), stdout=PTY)
    assert result.stdout == b"True\r\n"


async def test_pty_size():
    result = await run(["stty", "size"], stdin=PTY, stdout=PTY, pty_size=(33, 101))
    assert result.stdout == b"33 101\r\n"


async def test_pty_size_without_pty():
    with pytest.raises(ValueError, match="pty_size"):
        await run(["true"], stdout=PIPE, pty_size=(24, 80))


async def test_pty_interrupt_character():
    # ^C typed on the terminal reaches the child as SIGINT.
    code = "import time; print('ready', flush=True); time.sleep(30)"
    process = await aiospawn.open_process(python(code), stdin=PTY, stdout=PTY, stderr=None)
    output = b""
    while b"ready" not in output:
        output += await process.stdout.receive()
    await process.stdin.send(b"\x03")
    with anyio.fail_after(10):
        code = await process.wait()
    assert code == -signal.SIGINT
    await process.aclose()


async def test_pty_needs_clone(backend):
    if backend != "posix_spawn":
        result = await run(["tty"], stdin=PTY, stdout=PTY)
        assert result.stdout.startswith(b"/dev/pts/")
        return
    with pytest.raises(aiospawn.BackendUnavailableError, match="controlling terminal"):
        await run(["tty"], stdin=PTY, stdout=PTY)


# -- all options together ----------------------------------------------------------


async def test_all_options_together(tmp_path):
    result = await run(
        ["sh", "-c", "ulimit -Sn; umask; pwd"],
        stdin=PTY,
        stdout=PTY,
        cwd=tmp_path,
        umask=0o077,
        kill_tree=True,
        rlimits={"RLIMIT_NOFILE": 77},
        pdeathsig=signal.SIGKILL,
        timeout=10,
        cgroup=cgroup_available() or None,
    )
    assert result.stdout.split() == [b"77", b"0077", str(tmp_path).encode()]
    assert result.rusage is not None
