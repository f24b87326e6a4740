"""Bad input and exhausted resources: a clear exception and nothing left behind.

Each case must raise ValueError, TypeError or an OSError subclass before
or while spawning, and leave no fd and no child (the autouse no_leaks
fixture checks). Limits that would hurt the test process (RLIMIT_NOFILE,
RLIMIT_NPROC, credentials) are changed in a throwaway Python started for
the test. The hypothesis tests generate arguments, environments and
option combinations: each example must run or raise one of those
exceptions, and never crash, hang or leak.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import textwrap

import pytest
from conftest import child_pids, open_fds
from helpers import json_result, py, run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiospawn
from aiospawn import DEVNULL, PIPE, STDOUT

ACCEPTED = (ValueError, TypeError, OSError)

APIS = ["run", "exec", "open_process"]
MIB = 1 << 20


async def spawn(api: str, args, **options) -> int:
    """Start args through api, wait for it and return its return code."""
    if api == "run":
        return (await aiospawn.run(args, **options)).returncode
    if api == "exec":
        process = await aiospawn.create_subprocess_exec(*args, **options)
        return await process.wait()
    process = await aiospawn.open_process(args, **{"stdin": None, "stdout": None, "stderr": None, **options})
    return await process.wait()


def closed_fd() -> int:
    """A closed fd number far above the lowest free one, so nothing reuses it."""
    fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    high = os.dup2(fd, 901, inheritable=False)
    os.close(fd)
    os.close(high)
    return high


# -- arguments and environment ----------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("args", [["echo", "a\0b"], ["ec\0ho"], [b"echo", b"\0"]])
async def test_nul_in_args(api, args):
    with pytest.raises(ValueError):
        await spawn(api, args)


async def test_nul_in_shell_command():
    with pytest.raises(ValueError):
        await aiospawn.create_subprocess_shell("echo a\0b")


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("env", [{"A": "b\0c"}, {"A\0B": "c"}, {b"A": b"\0"}])
async def test_nul_in_env(api, env):
    with pytest.raises(ValueError):
        await spawn(api, ["true"], env=env)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("env", [{"A=B": "c"}, {"": "c"}, {b"=": b"c"}])
async def test_bad_env_key(api, env):
    with pytest.raises(ValueError):
        await spawn(api, ["true"], env=env)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    "env",
    [
        {"A": 1},
        {1: "a"},
        {"A": None},
        ["A=b"],
    ],
)
async def test_env_type(api, env):
    with pytest.raises(TypeError):
        await spawn(api, ["true"], env=env)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("argument", [3, None, 1.5, object(), ["nested"]])
async def test_argument_type(api, argument):
    with pytest.raises(TypeError):
        await spawn(api, ["echo", argument])


@pytest.mark.parametrize("api", ["run", "open_process"])
async def test_empty_argv(api):
    with pytest.raises(ValueError):
        await spawn(api, [])


async def test_empty_program_exec():
    with pytest.raises(OSError):
        await aiospawn.create_subprocess_exec("")


# -- fds and cwd -----------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fds", [[-1], [-7], "closed", [1.5], ["3"]])
async def test_bad_pass_fds(api, fds):
    if fds == "closed":
        fds = [closed_fd()]
    with pytest.raises((ValueError, TypeError)):
        await spawn(api, ["true"], pass_fds=fds)


@pytest.mark.parametrize("api", ["run", "exec"])
@pytest.mark.parametrize("name", ["stdin", "stdout", "stderr"])
@pytest.mark.parametrize("fd", [-5, "closed"])
async def test_bad_stdio_fd(api, name, fd):
    if fd == "closed":
        fd = closed_fd()
    with pytest.raises(ValueError):
        await spawn(api, ["true"], **{name: fd})


@pytest.mark.parametrize("name", ["stdin", "stdout", "stderr"])
@pytest.mark.parametrize("fd", [-5, "closed"])
async def test_bad_stdio_fd_anyio(name, fd):
    if fd == "closed":
        fd = closed_fd()
    options = {"stdin": None, "stdout": None, "stderr": None, name: fd}
    with pytest.raises(ValueError):
        await aiospawn.open_process(["true"], **options)


@pytest.mark.parametrize("api", ["run", "exec"])
async def test_stdout_as_stdin(api):
    with pytest.raises(ValueError):
        await spawn(api, ["true"], stdin=STDOUT)


@pytest.mark.parametrize("api", APIS)
async def test_cwd_is_file(api, backend, tmp_path):
    cwd = tmp_path / "file"
    cwd.write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        await spawn(api, ["true"], cwd=cwd)
    assert caught.value.filename == cwd


@pytest.mark.parametrize("api", APIS)
async def test_cwd_missing(api, backend, tmp_path):
    with pytest.raises(FileNotFoundError):
        await spawn(api, ["true"], cwd=tmp_path / "missing")


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    "option",
    [
        {"user": "aiospawn-no-such-user"},
        {"group": "aiospawn-no-such-group"},
        {"extra_groups": ["aiospawn-no-such-group"]},
    ],
)
async def test_unknown_name_like_subprocess(api, option, live_children):
    # subprocess raises KeyError for an unknown name, aiospawn ValueError:
    # the error is both, and its text is the plain message.
    with pytest.raises(KeyError) as caught:
        await spawn(api, ["true"], **option)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).endswith("database")
    assert live_children() == set()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("umask", 1 << 40),
        ("process_group", 1 << 40),
        ("user", 1 << 40),
        ("group", 1 << 40),
        ("extra_groups", [1 << 40]),
        ("pipesize", 1 << 40),
        ("rlimits", {"RLIMIT_NOFILE": 1 << 64}),
        ("rlimits", {1 << 40: 1}),
    ],
)
async def test_huge_int_option(api, option, value, live_children):
    # Values beyond the kernel's fields are invalid arguments, named in the error.
    with pytest.raises(ValueError, match=option):
        await spawn(api, ["true"], **{option: value})
    assert live_children() == set()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("option", ["stdin", "stdout", "stderr", "pass_fds"])
async def test_huge_fd(api, option, live_children):
    value = [1 << 40] if option == "pass_fds" else 1 << 40
    with pytest.raises(ValueError, match=option.removesuffix("s")):
        await spawn(api, ["true"], **{option: value})
    assert live_children() == set()


# -- E2BIG ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_e2big_env(api, backend):
    with pytest.raises(OSError) as caught:
        await spawn(api, ["true"], env={"HUGE": "x" * (3 * MIB)})
    assert caught.value.errno == errno.E2BIG


@pytest.mark.parametrize("api", APIS)
async def test_e2big_one_argument(api, backend):
    # Linux limits each string to MAX_ARG_STRLEN (32 pages, 128 KiB).
    with pytest.raises(OSError) as caught:
        await spawn(api, ["true", "y" * (200 * 1024)])
    assert caught.value.errno == errno.E2BIG


async def test_e2big_many_arguments(backend):
    with pytest.raises(OSError) as caught:
        await aiospawn.run(["true", *(["z" * 1000] * 4000)])
    assert caught.value.errno == errno.E2BIG


# -- EMFILE ----------------------------------------------------------------------------------

# Lowers RLIMIT_NOFILE a step at a time above the highest open fd, so each
# fd that spawning needs (watcher, pipes, /dev/null, status pipe, pidfd)
# is in turn the first that fails, then restores the limit and checks.
EMFILE_SCRIPT = textwrap.dedent(
    """
    import asyncio, errno, json, os, resource
    import aiospawn
    from aiospawn import PIPE, DEVNULL

    def fds():
        return sorted(int(name) for name in os.listdir("/proc/self/fd"))

    def children():
        with open(f"/proc/self/task/{os.getpid()}/children") as handle:
            return handle.read().split()

    async def attempt(api):
        if api == "run":
            result = await aiospawn.run(["cat"], input=b"x", capture_output=True)
            return result.stdout == b"x"
        if api == "exec":
            process = await aiospawn.create_subprocess_exec(
                "cat", stdin=PIPE, stdout=PIPE, stderr=DEVNULL)
            output, _ = await process.communicate(b"x")
            return output == b"x"
        process = await aiospawn.open_process(["cat"], stderr=DEVNULL)
        await process.stdin.send(b"x")
        await process.stdin.aclose()
        output = await process.stdout.receive()
        await process.aclose()
        return output == b"x"

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    outcomes, leaks = [], []
    for api in ("run", "exec", "open_process"):
        for extra in range(0, 12):
            before = fds()
            loop = asyncio.new_event_loop()
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(fds()) + 1 + extra, hard))
            try:
                outcome = "ok" if loop.run_until_complete(attempt(api)) else "wrong output"
            except OSError as error:
                outcome = errno.errorcode.get(error.errno, str(error.errno))
            except BaseException as error:
                outcome = type(error).__name__ + ": " + str(error)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            loop.run_until_complete(asyncio.sleep(0.05))
            loop.close()
            outcomes.append([api, extra, outcome])
            if fds() != before or children():
                leaks.append([api, extra, fds(), before, children()])
    print(json.dumps({"outcomes": outcomes, "leaks": leaks}))
    """
)


@pytest.fixture(scope="module")
def emfile_report():
    return json_result(run_python(EMFILE_SCRIPT, timeout=120))


def test_emfile_clear_error(emfile_report):
    unexpected = [item for item in emfile_report["outcomes"] if item[2] not in ("ok", "EMFILE")]
    assert unexpected == []


def test_emfile_reached(emfile_report):
    assert any(item[2] == "EMFILE" for item in emfile_report["outcomes"])


def test_emfile_recovers(emfile_report):
    assert emfile_report["outcomes"][-1][2] == "ok"


def test_emfile_nothing_left(emfile_report):
    assert emfile_report["leaks"] == []


# -- EAGAIN -----------------------------------------------------------------------------------

# Root ignores RLIMIT_NPROC, so the script drops to nobody after importing
# everything it needs (the interpreter may live under a directory, such as
# root's home, that nobody cannot read), then lowers the limit to 0.
EAGAIN_SCRIPT = textwrap.dedent(
    """
    import asyncio, errno, json, os, pwd, grp, resource, signal, threading
    import anyio, sniffio, aiospawn
    from aiospawn import _capabilities, _orphans, _trio_glue
    from aiospawn import PIPE

    PROBE_FIRST = {probe_first}
    if PROBE_FIRST:
        aiospawn.capabilities()
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
    os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)

    def children():
        with open(f"/proc/self/task/{{os.getpid()}}/children") as handle:
            return handle.read().split()

    async def attempt(api, options):
        if api == "run":
            return (await aiospawn.run(["true"], capture_output=True, **options)).returncode
        if api == "exec":
            process = await aiospawn.create_subprocess_exec("true", stdout=PIPE, **options)
            return await process.wait()
        process = await aiospawn.open_process(["true"], **options)
        return await process.wait()

    def fds():
        return sorted(os.listdir("/proc/self/fd"))

    outcomes, leaks = [], []
    loop = asyncio.new_event_loop()
    for api in ("run", "exec", "open_process"):
        for options in ({{}}, {{"umask": 0o22}}):
            before = fds()
            resource.setrlimit(resource.RLIMIT_NPROC, (0, hard))
            try:
                outcome = "exit %d" % loop.run_until_complete(attempt(api, options))
            except OSError as error:
                outcome = errno.errorcode.get(error.errno, str(error.errno))
            except BaseException as error:
                outcome = type(error).__name__ + ": " + str(error)
            finally:
                resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))
            loop.run_until_complete(asyncio.sleep(1.2))
            outcomes.append([api, options, outcome])
            if fds() != before or children():
                leaks.append([api, options, fds(), before, children()])
    after = loop.run_until_complete(attempt("run", {{}}))
    loop.close()
    print(json.dumps({{"outcomes": outcomes, "leaks": leaks, "after": after,
                      "backend": aiospawn.capabilities().backend}}))
    """
)


@pytest.fixture(scope="module", params=["probe_first", "probe_under_limit"])
def eagain_report(request):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody, since only a non-root user is bound by RLIMIT_NPROC")
    code = EAGAIN_SCRIPT.format(probe_first=request.param == "probe_first")
    return json_result(run_python(code, timeout=120))


def test_eagain_clear_error(eagain_report):
    unexpected = [item for item in eagain_report["outcomes"] if item[2] != "EAGAIN"]
    assert unexpected == []


def test_eagain_nothing_left(eagain_report):
    assert eagain_report["leaks"] == []


def test_eagain_recovers(eagain_report):
    assert eagain_report["after"] == 0


def test_eagain_keeps_best_backend(eagain_report):
    # A probe that failed for lack of processes must not pin a worse backend.
    assert eagain_report["backend"] == aiospawn.capabilities().backend


# -- hypothesis ------------------------------------------------------------------------------

ECHO_ARGV = py("import os, sys\nsys.stdout.buffer.write(b'\\0'.join(os.fsencode(a) for a in sys.argv[1:]))")
HYPOTHESIS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_clean(fds_before, label):
    """Fail if this example left an fd or a child behind."""
    assert open_fds() == fds_before, f"fds changed by {label}"
    assert child_pids() == set(), f"child left by {label}"


def encoded(item) -> bytes | None:
    try:
        return os.fsencode(item)
    except UnicodeEncodeError:
        return None


@HYPOTHESIS
@given(st.lists(st.one_of(st.text(), st.binary()), max_size=8))
def test_args_any(arguments):
    fds_before = open_fds()
    try:
        result = asyncio.run(aiospawn.run([*ECHO_ARGV, *arguments], stdout=PIPE))
    except ACCEPTED:
        expected = [encoded(item) for item in arguments]
        assert None in expected or any(b"\0" in item for item in expected)
    else:
        assert result.stdout == b"\0".join(os.fsencode(item) for item in arguments)
    check_clean(fds_before, arguments)


SAFE_KEY = st.one_of(st.text(min_size=0, max_size=12), st.binary(max_size=12)).filter(
    lambda key: not (key[:3] in ("LD_", b"LD_") or key[:6] in ("MALLOC", b"MALLOC"))
)


@HYPOTHESIS
@given(st.dictionaries(SAFE_KEY, st.one_of(st.text(max_size=20), st.binary(max_size=20)), max_size=6))
def test_env_any(env):
    fds_before = open_fds()
    try:
        result = asyncio.run(aiospawn.run(["/usr/bin/env", "-0"], stdout=PIPE, env=env))
    except ACCEPTED:
        names = [encoded(key) for key in env]
        values = [encoded(value) for value in env.values()]
        assert (
            None in names
            or None in values
            or any(not name or b"=" in name or b"\0" in name for name in names)
            or any(b"\0" in value for value in values)
        )
    else:
        expected = sorted(os.fsencode(key) + b"=" + os.fsencode(value) for key, value in env.items())
        assert sorted(entry for entry in result.stdout.split(b"\0") if entry) == expected
    check_clean(fds_before, env)


# Values beyond 32 bits are left to test_huge_int_option and test_huge_fd.
FD_CHOICES = st.sampled_from([None, PIPE, DEVNULL, STDOUT, -7, "closed", "devnull", 1.5, True, "text"])


@st.composite
def option_sets(draw):
    options = {
        "stdin": draw(FD_CHOICES),
        "stdout": draw(FD_CHOICES),
        "stderr": draw(FD_CHOICES),
        "cwd": draw(st.sampled_from([None, "/", "/nonexistent", "/etc/hostname", "", b"/tmp", 5])),
        "pass_fds": draw(st.lists(st.sampled_from([3, -1, "closed", "devnull", "x"]), max_size=3)),
        "close_fds": draw(st.booleans()),
        "start_new_session": draw(st.booleans()),
        "process_group": draw(st.sampled_from([None, 0, -1, "x"])),
        "umask": draw(st.sampled_from([-1, 0o22, 0, "x"])),
        "restore_signals": draw(st.booleans()),
        "timeout": draw(st.sampled_from([None, 5, 0, -1, "x"])),
        "env": draw(st.sampled_from([None, {}, {"PATH": "/usr/bin:/bin"}, {"A=": "b"}])),
        "text": draw(st.booleans()),
        "check": draw(st.booleans()),
    }
    shell = draw(st.booleans())
    args = (
        "exit 0"
        if shell
        else draw(st.sampled_from([["true"], ["/bin/true"], ["false"], [], ["missing-program-x"]]))
    )
    return args, shell, options


@HYPOTHESIS
@given(option_sets())
def test_options_any(case):
    args, shell, options = case
    opened = []

    def resolve(value):
        if value == "closed":
            return closed_fd()
        if value == "devnull":
            fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            opened.append(fd)
            return fd
        return value

    fds_before = open_fds()
    for name in ("stdin", "stdout", "stderr"):
        if isinstance(options[name], str) and options[name] in ("closed", "devnull"):
            options[name] = resolve(options[name])
    options["pass_fds"] = [
        resolve(item) if item in ("closed", "devnull") else item for item in options["pass_fds"]
    ]
    try:
        asyncio.run(aiospawn.run(args, shell=shell, **options))
    except (*ACCEPTED, subprocess.SubprocessError, aiospawn.BackendUnavailableError):
        # BackendUnavailableError: the posix_spawn backend cannot apply umask (documented).
        pass
    finally:
        for fd in opened:
            os.close(fd)
    check_clean(fds_before, case)
