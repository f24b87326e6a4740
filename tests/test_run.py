"""aiospawn.run() against real programs, on every backend the kernel allows.

No mocks: each test starts /bin/sh, cat, env, sleep or this Python. The
autouse no_leaks fixture in conftest.py fails any test that leaves an fd
open or a child behind, including the tests of bad input.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import aiospawn
from aiospawn import DEVNULL, PIPE, STDOUT, run

PY = sys.executable
MIB = 1 << 20


def py(code: str) -> list[str]:
    """argv running code with this Python, without site or environment variables."""
    return [PY, "-I", "-S", "-c", code]


# Prints the fds open in the child. The fd that listdir reads the listing
# through is closed when it returns, so the fstat leaves it out.
LIST_FDS = py(
    "import os\n"
    "names = os.listdir('/proc/self/fd')\n"
    "def is_open(fd):\n"
    "    try:\n"
    "        os.fstat(fd)\n"
    "    except OSError:\n"
    "        return False\n"
    "    return True\n"
    "print(' '.join(name for name in names if is_open(int(name))))\n"
)


def fd_set(output: bytes) -> set[int]:
    return {int(word) for word in output.split()}


def high_closed_fd() -> int:
    """A closed fd number far above the lowest free one, so nothing reuses it."""
    fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    high = os.dup2(fd, 900, inheritable=False)
    os.close(fd)
    os.close(high)
    return high


def kill_pid(pid: int) -> None:
    """Kill a grandchild we started, if it is still there."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- exit status -------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 7, 255])
async def test_exit_code(backend, code):
    result = await run(["sh", "-c", f"exit {code}"])
    assert result.returncode == code


async def test_completed_process(backend):
    result = await run(["/bin/true"])
    assert isinstance(result, subprocess.CompletedProcess)
    assert isinstance(result, aiospawn.CompletedProcess)
    assert (result.args, result.stdout, result.stderr) == (["/bin/true"], None, None)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1])
async def test_killed_by_signal(backend, signum):
    result = await run(["sh", "-c", f"kill -{int(signum)} $$"])
    assert result.returncode == -signum


# -- stdin, stdout and stderr ------------------------------------------------------


@pytest.mark.both_loops
async def test_capture(backend):
    result = await run(["sh", "-c", "echo out; echo err >&2"], capture_output=True)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


async def test_stderr_to_stdout(backend):
    result = await run(["sh", "-c", "echo one; echo two >&2; echo three"], stdout=PIPE, stderr=STDOUT)
    assert (result.stdout, result.stderr) == (b"one\ntwo\nthree\n", None)


async def test_stdin_devnull(backend):
    result = await run(["cat"], stdin=DEVNULL, stdout=PIPE)
    assert result.stdout == b""


async def test_stdout_devnull(backend):
    result = await run(["sh", "-c", "echo lost; echo kept >&2"], stdout=DEVNULL, stderr=PIPE)
    assert (result.stdout, result.stderr) == (None, b"kept\n")


async def test_stdout_raw_fd(backend, tmp_path):
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        await run(["echo", "to a file"], stdout=fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"to a file\n"


async def test_stdin_raw_fd(backend, tmp_path):
    path = tmp_path / "in"
    path.write_bytes(b"from a file\n")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        result = await run(["cat"], stdin=fd, stdout=PIPE)
    finally:
        os.close(fd)
    assert result.stdout == b"from a file\n"


async def test_file_objects(backend):
    with (
        tempfile.TemporaryFile() as stdin,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        stdin.write(b"line\n")
        stdin.flush()
        stdin.seek(0)
        await run(["sh", "-c", "cat; echo oops >&2"], stdin=stdin, stdout=stdout, stderr=stderr)
        stdout.seek(0)
        stderr.seek(0)
        assert (stdout.read(), stderr.read()) == (b"line\n", b"oops\n")


async def test_input(backend):
    result = await run(["cat"], input=b"hello", capture_output=True)
    assert result.stdout == b"hello"


async def test_input_empty(backend):
    result = await run(["cat"], input=b"", capture_output=True)
    assert result.stdout == b""


@pytest.mark.both_loops
async def test_input_large(backend):
    # Larger than a pipe buffer both ways: cat writes while it is still fed.
    data = bytes(range(256)) * (6 * 1024) + b"tail"
    assert len(data) > MIB
    result = await run(["cat"], input=data, capture_output=True)
    assert result.stdout == data


async def test_input_not_read(backend):
    # The child exits without reading: the broken pipe is not an error.
    result = await run(["true"], input=b"x" * (2 * MIB))
    assert result.returncode == 0


async def test_pipesize(backend):
    # As for subprocess.run: each pipe created gets the size asked for.
    show_sizes = py("import fcntl\nprint(*(fcntl.fcntl(fd, 1032) for fd in (0, 1, 2)))")  # F_GETPIPE_SZ
    result = await run(show_sizes, input=b"", capture_output=True, pipesize=MIB)
    assert result.stdout.split() == [str(MIB).encode()] * 3


# -- text mode -----------------------------------------------------------------------


async def test_text(backend):
    result = await run(["cat"], input="h\u00e9llo", capture_output=True, text=True)
    assert result.stdout == "h\u00e9llo"


async def test_text_encoding(backend):
    result = await run(["cat"], input="\u00e9t\u00e9", capture_output=True, encoding="latin-1")
    assert result.stdout == "\u00e9t\u00e9"


async def test_text_errors(backend):
    result = await run(["printf", "a\\377b"], stdout=PIPE, encoding="ascii", errors="replace")
    assert result.stdout == "a\ufffdb"


async def test_text_strict(backend):
    with pytest.raises(UnicodeDecodeError):
        await run(["printf", "a\\377b"], stdout=PIPE, encoding="ascii")


async def test_newlines(backend):
    result = await run(["printf", "a\\r\\nb\\rc\\n"], stdout=PIPE, text=True)
    assert result.stdout == "a\nb\nc\n"


async def test_universal_newlines(backend):
    result = await run(["printf", "a\\r\\nb"], stdout=PIPE, universal_newlines=True)
    assert result.stdout == "a\nb"


async def test_bytes_keep_newlines(backend):
    result = await run(["printf", "a\\r\\nb"], stdout=PIPE)
    assert result.stdout == b"a\r\nb"


# -- working directory and environment ----------------------------------------------


async def test_cwd(backend, tmp_path):
    result = await run(py("import os; print(os.getcwd())"), cwd=tmp_path, stdout=PIPE)
    assert result.stdout.decode().strip() == os.path.realpath(tmp_path)


async def test_cwd_relative_program(backend, tmp_path):
    script = tmp_path / "hello"
    script.write_text("#!/bin/sh\necho hello from cwd\n")
    script.chmod(0o755)
    result = await run(["./hello"], cwd=tmp_path, stdout=PIPE)
    assert result.stdout == b"hello from cwd\n"


async def test_env_exact(backend):
    env = {"ONE": "1", "SPACED": "a b", "EMPTY": ""}
    result = await run(["/usr/bin/env"], env=env, stdout=PIPE)
    assert sorted(result.stdout.decode().splitlines()) == ["EMPTY=", "ONE=1", "SPACED=a b"]


async def test_env_empty(backend):
    result = await run(["/usr/bin/env"], env={}, stdout=PIPE)
    assert result.stdout == b""


async def test_env_bytes(backend):
    result = await run(["/usr/bin/env"], env={b"RAW": b"\xff"}, stdout=PIPE)
    assert result.stdout == b"RAW=\xff\n"


async def test_env_path_lookup(backend, tmp_path):
    # PATH in env, not os.environ, decides where a bare name is found.
    script = tmp_path / "only-here"
    script.write_text("#!/bin/sh\necho found\n")
    script.chmod(0o755)
    result = await run(["only-here"], env={"PATH": str(tmp_path)}, stdout=PIPE)
    assert result.stdout == b"found\n"


async def test_env_inherited(backend, monkeypatch):
    monkeypatch.setenv("AIOSPAWN_TEST_MARK", "inherited")
    result = await run(["sh", "-c", 'echo "$AIOSPAWN_TEST_MARK"'], stdout=PIPE)
    assert result.stdout == b"inherited\n"


# -- fds ------------------------------------------------------------------------------


async def test_close_fds_default(backend):
    inheritable = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inheritable, True)
    try:
        result = await run(LIST_FDS, stdout=PIPE)
    finally:
        os.close(inheritable)
    assert fd_set(result.stdout) == {0, 1, 2}


async def test_pass_fds(backend):
    first_r, first_w = os.pipe()
    second = os.dup2(first_r, 200, inheritable=False)
    stray = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(stray, True)
    try:
        result = await run(LIST_FDS, stdout=PIPE, pass_fds=[second, first_w])
    finally:
        for fd in (first_r, first_w, second, stray):
            os.close(fd)
    assert fd_set(result.stdout) == {0, 1, 2, first_w, second}


async def test_pass_fds_usable(backend):
    read_end, write_end = os.pipe()
    try:
        await run(py(f"import os; os.write({write_end}, b'through')"), pass_fds=[write_end])
        os.close(write_end)
        write_end = -1
        received = os.read(read_end, 100)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert received == b"through"


async def test_close_fds_false(backend):
    inheritable = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inheritable, True)
    private = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        result = await run(LIST_FDS, stdout=PIPE, close_fds=False)
    finally:
        os.close(inheritable)
        os.close(private)
    assert inheritable in fd_set(result.stdout)
    assert private not in fd_set(result.stdout)


# -- session, group, umask and signals -------------------------------------------------


async def test_new_session(backend):
    result = await run(py("import os; print(os.getsid(0), os.getpid())"), stdout=PIPE, start_new_session=True)
    sid, pid = result.stdout.split()
    assert sid == pid


async def test_same_session(backend):
    result = await run(py("import os; print(os.getsid(0))"), stdout=PIPE)
    assert int(result.stdout) == os.getsid(0)


async def test_process_group(backend):
    result = await run(py("import os; print(os.getpgid(0), os.getpid())"), stdout=PIPE, process_group=0)
    pgid, pid = result.stdout.split()
    assert pgid == pid


@pytest.mark.parametrize("backend", ["clone3", "clone"], indirect=True)
@pytest.mark.parametrize("mask", [0o027, 0o077, 0])
async def test_umask(backend, mask):
    result = await run(["sh", "-c", "umask"], stdout=PIPE, umask=mask)
    assert int(result.stdout, 8) == mask


@pytest.mark.parametrize("backend", ["clone3", "clone"], indirect=True)
async def test_umask_extra_bits_like_subprocess(backend):
    # The kernel keeps only the permission bits, as under subprocess.
    show = ["sh", "-c", "umask"]
    result = await run(show, stdout=PIPE, umask=0o7022)
    assert result.stdout == subprocess.run(show, stdout=PIPE, umask=0o7022).stdout
    assert int(result.stdout, 8) == 0o022


@pytest.mark.parametrize("backend", ["posix_spawn"], indirect=True)
async def test_umask_posix_spawn(backend):
    # glibc's posix_spawn has no umask attribute, so run() raises before any child exists.
    with pytest.raises(aiospawn.BackendUnavailableError, match="umask"):
        await run(["sh", "-c", "umask"], umask=0o027)


SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)


def sig_ignored(status: bytes) -> int:
    for line in status.decode().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn line in {status!r}")


async def test_restore_signals(backend):
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # as CPython starts
    result = await run(["cat", "/proc/self/status"], stdout=PIPE)
    assert sig_ignored(result.stdout) & SIGPIPE_BIT == 0


async def test_keep_signals(backend):
    result = await run(["cat", "/proc/self/status"], stdout=PIPE, restore_signals=False)
    assert sig_ignored(result.stdout) & SIGPIPE_BIT == SIGPIPE_BIT


# -- check and timeout ------------------------------------------------------------------


async def test_check(backend):
    with pytest.raises(subprocess.CalledProcessError) as caught:
        await run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True, check=True)
    error = caught.value
    assert (error.returncode, error.cmd, error.output, error.stderr) == (
        3,
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        b"out\n",
        b"err\n",
    )


async def test_check_text(backend):
    with pytest.raises(subprocess.CalledProcessError) as caught:
        await run(["sh", "-c", "echo out; exit 1"], stdout=PIPE, check=True, text=True)
    assert caught.value.output == "out\n"


async def test_check_signal(backend):
    with pytest.raises(subprocess.CalledProcessError) as caught:
        await run(["sh", "-c", "kill -KILL $$"], check=True)
    assert caught.value.returncode == -signal.SIGKILL


async def test_check_success(backend):
    result = await run(["true"], check=True)
    assert result.returncode == 0


@pytest.mark.both_loops
async def test_timeout(backend):
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        await run(
            ["sh", "-c", "echo partial; echo half >&2; exec sleep 30"], capture_output=True, timeout=0.5
        )
    elapsed = time.monotonic() - started
    error = caught.value
    assert (error.timeout, error.output, error.stderr) == (0.5, b"partial\n", b"half\n")
    assert elapsed < 2.5


async def test_timeout_nothing_read(backend):
    # subprocess.run reports a captured stream with nothing read as None.
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        await run(["sh", "-c", "echo partial; exec sleep 30"], capture_output=True, timeout=0.5)
    assert caught.value.output == b"partial\n"
    assert caught.value.stderr is None


async def test_timeout_no_pipes(backend):
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        await run(["sleep", "30"], timeout=0.2)
    assert (caught.value.output, caught.value.stderr) == (None, None)


async def test_timeout_ignores_term(backend):
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        await run(["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"], stdout=PIPE, timeout=0.5)
    elapsed = time.monotonic() - started
    assert caught.value.output == b"ready\n"
    assert elapsed < 2.5


async def test_timeout_not_reached(backend):
    result = await run(["sh", "-c", "echo quick"], stdout=PIPE, timeout=10)
    assert result.stdout == b"quick\n"


async def test_timeout_grandchild(backend, tmp_path):
    # The shell exits at once, but its background sleep keeps stdout open.
    pid_file = tmp_path / "pid"
    grandchild = None
    started = time.monotonic()
    try:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await run(
                ["sh", "-c", f"sleep 30 & echo $! > {pid_file}; echo $!"], capture_output=True, timeout=0.5
            )
        elapsed = time.monotonic() - started
        grandchild = int(caught.value.output)
        assert elapsed < 1.5
    finally:
        if grandchild is None and pid_file.exists():
            grandchild = int(pid_file.read_text())
        if grandchild is not None:
            kill_pid(grandchild)


# -- cancellation --------------------------------------------------------------------------


@pytest.mark.both_loops
async def test_cancel(backend, live_children):
    task = asyncio.create_task(run(["sleep", "30"]))
    await asyncio.sleep(0.2)
    assert len(live_children()) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert live_children() == set()


async def test_cancel_with_pipes(backend, live_children):
    # The child never reads, so feeding stdin is still pending at the cancel.
    task = asyncio.create_task(run(["sleep", "30"], input=b"x" * (2 * MIB), capture_output=True))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert live_children() == set()


async def test_cancel_before_start(backend, live_children):
    task = asyncio.create_task(run(["sleep", "30"]))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert live_children() == set()


async def test_wait_for(backend, live_children):
    started = time.monotonic()
    # asyncio.TimeoutError is the builtin TimeoutError only from Python 3.11 on.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(run(["sleep", "30"]), 0.2)
    elapsed = time.monotonic() - started
    assert live_children() == set()
    assert elapsed < 1.5


# -- failures before exec --------------------------------------------------------------------


@pytest.mark.parametrize("program", ["/nonexistent/aiospawn-test", "aiospawn-no-such-program"])
async def test_missing_program(backend, program):
    with pytest.raises(FileNotFoundError) as caught:
        await run([program, "arg"])
    assert caught.value.filename == program


async def test_missing_program_captured(backend):
    with pytest.raises(FileNotFoundError) as caught:
        await run(["/nonexistent/aiospawn-test"], capture_output=True)
    assert caught.value.errno == errno.ENOENT


async def test_not_executable(backend, tmp_path):
    script = tmp_path / "plain"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    with pytest.raises(PermissionError) as caught:
        await run([str(script)])
    assert caught.value.filename == str(script)


async def test_directory_as_program(backend, tmp_path):
    with pytest.raises(PermissionError) as caught:
        await run([str(tmp_path)])
    assert caught.value.filename == str(tmp_path)


async def test_missing_cwd(backend, tmp_path):
    cwd = str(tmp_path / "gone")
    with pytest.raises(FileNotFoundError) as caught:
        await run(["true"], cwd=cwd)
    assert caught.value.filename == cwd


async def test_file_as_cwd(backend, tmp_path):
    cwd = tmp_path / "file"
    cwd.write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        await run(["true"], cwd=cwd)
    assert caught.value.filename == cwd


async def test_e2big(backend):
    with pytest.raises(OSError) as caught:
        await run(["true", "x" * (3 * MIB)])
    assert caught.value.errno == errno.E2BIG


# -- shell and executable ------------------------------------------------------------------


async def test_shell(backend):
    result = await run("echo $((6 * 7)) | cat", shell=True, stdout=PIPE)
    assert result.stdout == b"42\n"


async def test_shell_argv0(backend):
    result = await run('echo "$0"', shell=True, stdout=PIPE)
    assert result.stdout == b"/bin/sh\n"


async def test_shell_executable(backend):
    result = await run('echo "$0"', shell=True, executable="/bin/dash", stdout=PIPE)
    assert result.stdout == b"/bin/dash\n"


async def test_executable(backend):
    result = await run(["shown-name", "-c", 'echo "$0"'], executable="/bin/sh", stdout=PIPE)
    assert result.stdout == b"shown-name\n"


async def test_missing_executable(backend):
    with pytest.raises(FileNotFoundError) as caught:
        await run(["true"], executable="/nonexistent/aiospawn-exe")
    assert caught.value.filename == "/nonexistent/aiospawn-exe"


# -- bad input, rejected before anything is spawned -----------------------------------------


async def test_nul_in_argument():
    with pytest.raises(ValueError, match=r"args\[1\]"):
        await run(["echo", "a\0b"])


async def test_nul_in_program():
    with pytest.raises(ValueError, match=r"args\[0\]"):
        await run(["ec\0ho"])


async def test_nul_in_env_value():
    with pytest.raises(ValueError, match="NAME"):
        await run(["true"], env={"NAME": "a\0b"})


async def test_nul_in_env_key():
    with pytest.raises(ValueError, match="NUL"):
        await run(["true"], env={"NA\0ME": "x"})


async def test_equals_in_env_key():
    with pytest.raises(ValueError, match="A=B"):
        await run(["true"], env={"A=B": "x"})


async def test_empty_env_key():
    with pytest.raises(ValueError):
        await run(["true"], env={"": "x"})


async def test_nul_in_cwd():
    with pytest.raises(ValueError, match="cwd"):
        await run(["true"], cwd="/t\0mp")


@pytest.mark.parametrize("argument", [3, None, 1.5, object()])
async def test_argument_type(argument):
    with pytest.raises(TypeError, match=r"args\[1\]"):
        await run(["echo", argument])


async def test_args_type():
    with pytest.raises(TypeError):
        await run(42)


async def test_env_value_type():
    with pytest.raises(TypeError):
        await run(["true"], env={"N": 1})


@pytest.mark.parametrize("args", [[], ()])
async def test_empty_args(args):
    with pytest.raises(ValueError, match="empty"):
        await run(args)


async def test_preexec_fn():
    with pytest.raises(ValueError) as caught:
        await run(["true"], preexec_fn=lambda: None)
    named = {"cwd", "umask", "start_new_session", "process_group", "pass_fds", "close_fds", "restore_signals"}
    assert {name for name in named if name not in str(caught.value)} == set()


async def test_stdin_and_input():
    with pytest.raises(ValueError, match="stdin and input"):
        await run(["cat"], stdin=PIPE, input=b"x")


@pytest.mark.parametrize("option", ["stdout", "stderr"])
async def test_capture_output_conflict(option):
    with pytest.raises(ValueError, match="capture_output"):
        await run(["true"], capture_output=True, **{option: PIPE})


async def test_input_str_without_text():
    with pytest.raises(TypeError):
        await run(["cat"], input="text")


async def test_stdout_stdout():
    with pytest.raises(ValueError, match="stdout=STDOUT"):
        await run(["true"], stdout=STDOUT)


@pytest.mark.parametrize("option", ["stdin", "stdout", "stderr"])
async def test_negative_fd(option):
    with pytest.raises(ValueError, match=option):
        await run(["true"], **{option: -5})


@pytest.mark.parametrize("option", ["stdin", "stdout", "stderr"])
async def test_closed_fd(option):
    with pytest.raises(ValueError, match="not an open file descriptor"):
        await run(["true"], **{option: high_closed_fd()})


async def test_pass_fds_negative():
    with pytest.raises(ValueError, match="negative"):
        await run(["true"], pass_fds=[-1])


async def test_pass_fds_closed():
    with pytest.raises(ValueError, match="not an open file descriptor"):
        await run(["true"], pass_fds=[high_closed_fd()])


async def test_pass_fds_type():
    with pytest.raises(TypeError):
        await run(["true"], pass_fds=["3"])


async def test_negative_process_group():
    with pytest.raises(ValueError):
        await run(["true"], process_group=-1)


async def test_timeout_type():
    with pytest.raises(TypeError):
        await run(["true"], timeout="1")


async def test_bad_input_then_run():
    # A rejected call leaves the loop usable for the next one.
    with pytest.raises(ValueError):
        await run(["true"], stdout=-5)
    result = await run(["sh", "-c", "exit 4"])
    assert result.returncode == 4


# -- no threads, no SIGCHLD handler -----------------------------------------------------------


async def test_no_thread_no_handler(backend):
    threads = threading.active_count()
    tasks = len(os.listdir("/proc/self/task"))
    handler = signal.getsignal(signal.SIGCHLD)
    running = [asyncio.create_task(run(["sleep", "0.3"], capture_output=True)) for _ in range(5)]
    await asyncio.sleep(0.1)
    threads_during = threading.active_count()
    tasks_during = len(os.listdir("/proc/self/task"))
    handler_during = signal.getsignal(signal.SIGCHLD)
    await asyncio.gather(*running)
    assert threads_during == threads
    assert tasks_during == tasks
    assert handler_during == handler


@pytest.mark.parametrize("backend", ["clone3", "clone"], indirect=True)
async def test_sigchld_ignored(backend):
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        result = await run(["sh", "-c", "exit 5"])
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert result.returncode == 5


# -- many at once -------------------------------------------------------------------------------


@pytest.mark.both_loops
async def test_many(backend):
    codes = [n % 256 for n in range(200)]
    results = await asyncio.gather(*(run(["sh", "-c", f"exit {code}"]) for code in codes))
    assert [result.returncode for result in results] == codes


async def test_many_captured(backend):
    results = await asyncio.gather(*(run(["echo", str(n)], stdout=PIPE) for n in range(100)))
    assert [result.stdout for result in results] == [b"%d\n" % n for n in range(100)]
