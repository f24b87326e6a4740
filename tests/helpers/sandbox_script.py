"""Exercise aiospawn inside a seccomp sandbox and print one JSON report.

Run by tests/test_sandbox.py under helpers/seccomp_exec. Each scenario
records "ok", or the exception it raised, so the test can check every
one. It starts no thread: with clone3 failing with EPERM, glibc's
pthread_create fails too (glibc 2.34 and newer try clone3 first and fall
back to clone only on ENOSYS).
"""

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
import tempfile

import aiospawn
from aiospawn import DEVNULL, PIPE


async def spawn_wait():
    result = await aiospawn.run(["sh", "-c", "exit 3"])
    assert result.returncode == 3, result


async def capture():
    result = await aiospawn.run(["sh", "-c", "echo out; echo err >&2"], capture_output=True)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n"), result


async def feed_input():
    data = os.urandom(300_000)
    result = await aiospawn.run(["cat"], input=data, stdout=PIPE)
    assert result.stdout == data


async def options():
    with tempfile.TemporaryDirectory() as directory:
        read_end, write_end = os.pipe()
        try:
            result = await aiospawn.run(
                [
                    "sh",
                    "-c",
                    f'pwd; echo "$ONLY"; echo passed >&{write_end}; umask; '
                    "ps -o sid= -p $$ >/dev/null; test $(ps -o pgid= -p $$) -eq $$ && echo leader",
                ],
                stdout=PIPE,
                stderr=DEVNULL,
                cwd=directory,
                env={"ONLY": "given", "PATH": os.defpath + ":/usr/bin"},
                pass_fds=[write_end],
                start_new_session=True,
                umask=0o027,
                restore_signals=True,
            )
        finally:
            os.close(write_end)
        passed = os.read(read_end, 100)
        os.close(read_end)
    lines = result.stdout.decode().split()
    assert lines[:3] == [os.path.realpath(directory), "given", "0027"], lines
    assert lines[-1] == "leader", lines
    assert passed == b"passed\n", passed


async def shell_and_executable():
    result = await aiospawn.run('echo "$0"', shell=True, executable="/bin/sh", stdout=PIPE)
    assert result.stdout == b"/bin/sh\n", result


async def timeout():
    try:
        await aiospawn.run(["sleep", "30"], timeout=0.2)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("sleep 30 finished before its 0.2 s timeout")


async def missing_program():
    try:
        await aiospawn.run(["/nonexistent/aiospawn-sandbox"])
    except FileNotFoundError:
        return
    raise AssertionError("a missing program ran")


async def process_signal():
    process = await aiospawn.create_subprocess_exec("sleep", "30")
    process.send_signal(signal.SIGTERM)
    assert await process.wait() == -signal.SIGTERM


async def process_communicate():
    process = await aiospawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    output, _ = await process.communicate(b"through cat\n")
    assert output == b"through cat\n"


async def credentials():
    nobody = pwd.getpwnam("nobody")
    result = await aiospawn.run(
        ["id", "-u"], stdout=PIPE, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[]
    )
    assert result.stdout == f"{nobody.pw_uid}\n".encode(), result


async def sigchld_ignored():
    # posix_spawn returns before aiospawn can open the pidfd. A child that
    # exits in between is reaped by the kernel (SIGCHLD is ignored) before
    # any pidfd could keep its status, and that loss must be reported.
    lost_allowed = aiospawn.capabilities().backend == "posix_spawn"
    outcomes = []
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        for _ in range(10):
            try:
                outcomes.append((await aiospawn.run(["sh", "-c", "exit 5"])).returncode)
            except aiospawn.ExitStatusUnknownError:
                if not lost_allowed:
                    raise
                outcomes.append("lost")
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert set(outcomes) <= {5, "lost"}, outcomes
    assert 5 in outcomes, outcomes


SCENARIOS = [
    spawn_wait,
    capture,
    feed_input,
    options,
    shell_and_executable,
    timeout,
    missing_program,
    process_signal,
    process_communicate,
    credentials,
    sigchld_ignored,
]


async def main():
    report = {}
    try:
        chosen = aiospawn.capabilities()
        report["backend"] = chosen.backend
        report["reason"] = chosen.reason
        report["features"] = chosen.features
    except Exception as error:
        report["capabilities_error"] = f"{type(error).__name__}: {error}"
    report["scenarios"] = {}
    for scenario in SCENARIOS:
        if scenario is credentials and os.geteuid() != 0:
            continue
        try:
            await asyncio.wait_for(scenario(), 20)
            outcome = "ok"
        except BaseException as error:  # reported, not raised: the test checks each one
            outcome = f"{type(error).__name__}: {error}"
        report["scenarios"][scenario.__name__] = outcome
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
    sys.stdout.flush()
