"""Shared pieces of the reliability, hygiene, bad-input, sandbox and privilege tests.

Imported as ``helpers`` (pytest puts tests/ on sys.path, since tests/ has
no __init__.py). Nothing here patches aiospawn: the tests use it as a
program would.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import time

PY = sys.executable


def py(code: str) -> list[str]:
    """Return the argv that runs code with this Python, without site or environment variables."""
    return [PY, "-I", "-S", "-c", code]


# Prints "fd target" for each fd open in the child. The fd that listdir
# reads /proc/self/fd through is closed when listdir returns, so readlink
# on it fails and it is left out.
LIST_FDS_WITH_TARGETS = py(
    "import os\n"
    "for name in os.listdir('/proc/self/fd'):\n"
    "    try:\n"
    "        print(name, os.readlink('/proc/self/fd/' + name))\n"
    "    except OSError:\n"
    "        pass\n"
)


def parse_fd_listing(output: bytes) -> dict[int, str]:
    """Return {fd: target} from the output of LIST_FDS_WITH_TARGETS."""
    listing = {}
    for line in output.decode().splitlines():
        number, _, target = line.partition(" ")
        listing[int(number)] = target
    return listing


def status_fields(text: bytes | str) -> dict[str, str]:
    """Parse /proc/PID/status into {field: value}, values stripped."""
    if isinstance(text, bytes):
        text = text.decode()
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def signal_set(hex_mask: str) -> set[int]:
    """Return the signal numbers set in a SigBlk/SigIgn/SigCgt mask."""
    mask = int(hex_mask, 16)
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


def kill_quietly(pid: int) -> None:
    """Send SIGKILL to pid, a process this test started, if it still exists."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    """Wait until pid has exited (gone or a zombie); return whether it did in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
        except (FileNotFoundError, ProcessLookupError):
            return True
        if stat[stat.rindex(")") + 2] in "ZX":
            return True
        time.sleep(0.02)
    return False


# -- PIDFD_GET_INFO (Linux 6.15) ------------------------------------------------------

# struct pidfd_info up to exit_code: 64 bytes. _IOWR(0xFF, 11, struct pidfd_info).
_PIDFD_INFO_SIZE = 64
_PIDFD_GET_INFO = (3 << 30) | (_PIDFD_INFO_SIZE << 16) | (0xFF << 8) | 11
_PIDFD_INFO_EXIT = 1 << 3


def pidfd_keeps_exit_status() -> bool:
    """Return whether a pidfd still reports the exit status after someone else reaped the child.

    Linux 6.15 added PIDFD_INFO_EXIT to the PIDFD_GET_INFO ioctl. This
    starts a child with the standard library, reaps it with waitpid, then
    asks its pidfd; older kernels fail the ioctl with ENOTTY or EINVAL,
    or leave the PIDFD_INFO_EXIT bit clear.
    """
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    pidfd = os.pidfd_open(child.pid)
    try:
        child.wait()
        request = bytearray(_PIDFD_INFO_SIZE)
        struct.pack_into("Q", request, 0, _PIDFD_INFO_EXIT)
        try:
            fcntl.ioctl(pidfd, _PIDFD_GET_INFO, request)
        except OSError as error:
            if error.errno in (errno.ENOTTY, errno.EINVAL, errno.ESRCH):
                return False
            raise
        mask = struct.unpack_from("Q", request, 0)[0]
        exit_code = struct.unpack_from("i", request, 60)[0]
        return bool(mask & _PIDFD_INFO_EXIT) and os.waitstatus_to_exitcode(exit_code) == 3
    finally:
        os.close(pidfd)


# -- throwaway Python processes -------------------------------------------------------


def run_python(
    code: str, *, user: str | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh Python of this venv (aiospawn importable) and return its result.

    For tests that change process-wide state the test process must keep:
    resource limits, credentials, seccomp filters. Runs as user when given
    (the test process must be root for that).
    """
    return subprocess.run(
        [PY, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        user=user,
        env=env,
        cwd="/",
    )


def json_result(completed: subprocess.CompletedProcess[str]) -> dict:
    """Return the JSON object a run_python script printed last, or fail with its stderr."""
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise AssertionError(
            f"the helper script exited with {completed.returncode}\n"
            f"stdout: {completed.stdout}\nstderr: {completed.stderr}"
        )
    return json.loads(lines[-1])
