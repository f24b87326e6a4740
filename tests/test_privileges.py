"""user, group and extra_groups: the child runs with exactly the identity requested, or not at all.

The child prints the Uid, Gid and Groups lines of its own
/proc/self/status. The expected lines come from the standard library's
subprocess.run with the same options, so aiospawn must switch
credentials exactly as subprocess does. A failed switch (an unprivileged
caller asking for root) must raise, and the program must never run:
those cases drop to nobody inside a throwaway Python, since the test
process must stay root.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import textwrap
import uuid

import pytest
from helpers import json_result, run_python, status_fields

import aiospawn
from aiospawn import PIPE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)
SHOW_STATUS = ["cat", "/proc/self/status"]
APIS = ["run", "exec", "open_process"]
IDENTITY = ("Uid", "Gid", "Groups")


async def child_identity(api: str, **options) -> dict[str, str]:
    """Return the Uid, Gid and Groups lines of a child started through api."""
    if api == "run":
        output = (await aiospawn.run(SHOW_STATUS, stdout=PIPE, **options)).stdout
    elif api == "exec":
        process = await aiospawn.create_subprocess_exec(*SHOW_STATUS, stdout=PIPE, **options)
        output, _ = await process.communicate()
    else:
        process = await aiospawn.open_process(SHOW_STATUS, stdin=None, stderr=None, **options)
        output = b"".join([chunk async for chunk in process.stdout])
        await process.aclose()
    fields = status_fields(output)
    return {name: fields[name] for name in IDENTITY}


def subprocess_identity(**options) -> dict[str, str]:
    fields = status_fields(subprocess.run(SHOW_STATUS, stdout=PIPE, check=True, **options).stdout)
    return {name: fields[name] for name in IDENTITY}


CASES = {
    "names": {"user": "nobody", "group": NOGROUP.gr_name, "extra_groups": []},
    "ids": {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": []},
    "extra_groups": {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": ["daemon", 2, "sys"]},
    "user_only": {"user": "nobody"},
    "group_only": {"group": NOGROUP.gr_name},
    "groups_only": {"extra_groups": [1, 2]},
    # uid_t and gid_t are unsigned: ids beyond 2**31 exist (user namespaces map them).
    "ids_beyond_31_bits": {"user": 3_000_000_000, "group": 3_000_000_001, "extra_groups": [(1 << 32) - 2]},
}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("case", sorted(CASES))
async def test_identity_like_subprocess(backend, api, case):
    if backend == "posix_spawn":
        pytest.skip("the posix_spawn backend cannot switch credentials")
    options = CASES[case]
    identity = await child_identity(api, **options)
    assert identity == subprocess_identity(**options)


@pytest.mark.parametrize("api", APIS)
async def test_nobody_exact(backend, api):
    if backend == "posix_spawn":
        pytest.skip("the posix_spawn backend cannot switch credentials")
    identity = await child_identity(api, user="nobody", group=NOBODY.pw_gid, extra_groups=[])
    uid, gid = NOBODY.pw_uid, NOBODY.pw_gid
    assert identity["Uid"].split() == [str(uid)] * 4
    assert identity["Gid"].split() == [str(gid)] * 4
    assert identity["Groups"] == ""


@pytest.mark.parametrize("backend", ["posix_spawn"], indirect=True)
async def test_posix_spawn_rejects_user(backend):
    with pytest.raises(aiospawn.BackendUnavailableError):
        await aiospawn.run(["true"], user="nobody")


@pytest.mark.parametrize(
    "option",
    [
        {"user": "aiospawn-no-such-user"},
        {"group": "aiospawn-no-such-group"},
        {"extra_groups": ["aiospawn-no-such-group"]},
    ],
)
async def test_unknown_name(option):
    with pytest.raises(ValueError):
        await aiospawn.run(["true"], **option)


@pytest.mark.parametrize(
    "option",
    [
        {"user": -1},
        {"group": -2},
        {"extra_groups": [-3]},
        {"user": (1 << 32) - 1},
        {"group": 1 << 40},
        {"extra_groups": [1 << 32]},
    ],
)
async def test_id_out_of_range(option):
    with pytest.raises(ValueError):
        await aiospawn.run(["true"], **option)


# -- a switch that fails -----------------------------------------------------------------------

# Imports everything first: once it is nobody, this Python may no longer
# read its own standard library (here it lies under root's home directory).
UNPRIVILEGED_SCRIPT = textwrap.dedent(
    """
    import asyncio, errno, grp, json, os, pwd, resource, signal
    import anyio, sniffio, aiospawn
    from aiospawn import _capabilities, _orphans, _trio_glue, PIPE

    aiospawn.capabilities()
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
    os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
    MARKER = {marker!r}

    async def attempt(api, options):
        argv = ["sh", "-c", "echo ran > " + MARKER]
        if api == "run":
            return (await aiospawn.run(argv, **options)).returncode
        if api == "exec":
            process = await aiospawn.create_subprocess_exec(*argv, **options)
            return await process.wait()
        process = await aiospawn.open_process(argv, stdin=None, stdout=None, stderr=None, **options)
        return await process.wait()

    def children():
        with open(f"/proc/self/task/{{os.getpid()}}/children") as handle:
            return handle.read().split()

    outcomes = []
    for api in ("run", "exec", "open_process"):
        for options in ({{"user": 0}}, {{"group": 0}}, {{"extra_groups": [0]}},
                        {{"user": "root", "group": "root", "extra_groups": []}}):
            try:
                outcome = "exit %d" % asyncio.run(attempt(api, options))
            except OSError as error:
                outcome = type(error).__name__ + " " + errno.errorcode.get(error.errno, "?")
            except BaseException as error:
                outcome = type(error).__name__ + ": " + str(error)
            outcomes.append([api, options, outcome, os.path.exists(MARKER), children()])
    print(json.dumps({{"outcomes": outcomes}}))
    """
)


@pytest.fixture(scope="module")
def unprivileged_report():
    marker = f"/tmp/aiospawn-privileges-{uuid.uuid4().hex}"
    try:
        yield json_result(run_python(UNPRIVILEGED_SCRIPT.format(marker=marker), timeout=60))
    finally:
        if os.path.exists(marker):
            os.unlink(marker)


def test_switch_failure_raises(unprivileged_report):
    outcomes = [item[2] for item in unprivileged_report["outcomes"]]
    assert outcomes == ["PermissionError EPERM"] * len(outcomes)


def test_switch_failure_never_runs(unprivileged_report):
    ran = [item[:2] for item in unprivileged_report["outcomes"] if item[3]]
    assert ran == []


def test_switch_failure_reaped(unprivileged_report):
    left = [item[:2] for item in unprivileged_report["outcomes"] if item[4]]
    assert left == []
