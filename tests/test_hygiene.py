"""What a child starts with: signal dispositions and mask, open fds, environment.

The child reports its own state from /proc/self/status and /proc/self/fd,
so these tests see what the exec'd program sees, whatever the parent
thread did to its signals beforehand. The expected dispositions come from
the standard library's subprocess.run in the same parent state, with one
deliberate difference: aiospawn always starts the child with an empty
signal mask, where subprocess passes on the parent thread's mask.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading

import pytest
from conftest import open_fds
from helpers import LIST_FDS_WITH_TARGETS, parse_fd_listing, signal_set, status_fields

import aiospawn
from aiospawn import PIPE

SHOW_STATUS = ["cat", "/proc/self/status"]
BLOCKED = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP}


async def child_status(api: str, **options) -> dict[str, str]:
    """Return the /proc/self/status fields of a child started through api."""
    if api == "run":
        result = await aiospawn.run(SHOW_STATUS, stdout=PIPE, **options)
        return status_fields(result.stdout)
    if api == "exec":
        process = await aiospawn.create_subprocess_exec(*SHOW_STATUS, stdout=PIPE, **options)
        output, _ = await process.communicate()
        return status_fields(output)
    process = await aiospawn.open_process(SHOW_STATUS, stdin=None, stderr=None, **options)
    chunks = []
    async for chunk in process.stdout:
        chunks.append(chunk)
    await process.aclose()
    return status_fields(b"".join(chunks))


def subprocess_status(**options) -> dict[str, str]:
    return status_fields(subprocess.run(SHOW_STATUS, stdout=PIPE, check=True, **options).stdout)


class SignalState:
    """Signal dispositions and mask of the calling thread, set for a test and restored after."""

    def __init__(self, ignored=(), handled=(), blocked=()):
        self.ignored = ignored
        self.handled = handled
        self.blocked = blocked
        self.handler_calls: list[int] = []
        self.saved: dict[int, object] = {}
        self.saved_mask: set[int] = set()

    def _handler(self, number, frame):
        self.handler_calls.append(number)

    def __enter__(self):
        for number in (*self.ignored, *self.handled):
            self.saved[number] = signal.getsignal(number)
        for number in self.ignored:
            signal.signal(number, signal.SIG_IGN)
        for number in self.handled:
            signal.signal(number, self._handler)
        self.saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.blocked)
        return self

    def __exit__(self, *exc_info):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.saved_mask)
        for number, previous in self.saved.items():
            signal.signal(number, previous)


APIS = ["run", "exec", "open_process"]

# -- signal mask and dispositions ---------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_mask_empty_when_parent_blocks(backend, api):
    with SignalState(blocked=BLOCKED):
        fields = await child_status(api)
    assert signal_set(fields["SigBlk"]) == set()


async def test_mask_empty_parent_blocks_all(backend):
    # valid_signals() leaves out 32 and 33, which glibc keeps for itself.
    with SignalState(blocked=set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}):
        fields = await child_status("run")
    assert signal_set(fields["SigBlk"]) == set()


@pytest.mark.parametrize("api", APIS)
async def test_no_handlers_in_child(backend, api):
    with SignalState(handled=(signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)):
        fields = await child_status(api)
    assert signal_set(fields["SigCgt"]) == set()


@pytest.mark.parametrize("api", APIS)
async def test_ignored_like_subprocess(backend, api):
    # SIGPIPE is ignored by every Python; SIGUSR2 and SIGHUP by this test.
    with SignalState(ignored=(signal.SIGUSR2, signal.SIGHUP)):
        fields = await child_status(api)
        expected = subprocess_status()
    assert signal_set(fields["SigIgn"]) == signal_set(expected["SigIgn"])


async def test_sigpipe_restored(backend):
    fields = await child_status("run")
    assert signal.SIGPIPE not in signal_set(fields["SigIgn"])


async def test_sigpipe_kept_ignored(backend):
    fields = await child_status("run", restore_signals=False)
    expected = subprocess_status(restore_signals=False)
    assert signal.SIGPIPE in signal_set(fields["SigIgn"])
    assert signal_set(fields["SigIgn"]) == signal_set(expected["SigIgn"])


async def test_all_states_at_once(backend):
    state = SignalState(ignored=(signal.SIGUSR2,), handled=(signal.SIGUSR1, signal.SIGTERM), blocked=BLOCKED)
    with state:
        fields = await child_status("run")
        expected = subprocess_status()
    assert signal_set(fields["SigBlk"]) == set()
    assert signal_set(fields["SigCgt"]) == set()
    assert signal_set(fields["SigIgn"]) == signal_set(expected["SigIgn"])
    assert signal_set(fields["SigPnd"]) == set()


@pytest.mark.parametrize("backend", ["clone3", "clone"], indirect=True)
async def test_handler_never_runs_in_child(backend, live_children):
    # A sender thread signals every child it sees, many of them before
    # their exec. The parent never receives SIGUSR1 itself, so a call of
    # its Python handler would mean the handler ran on the child's side
    # of the shared memory.
    stop = threading.Event()
    sent = [0]

    def bombard():
        while not stop.is_set():
            for pid in live_children():
                try:
                    os.kill(pid, signal.SIGUSR1)
                    sent[0] += 1
                except ProcessLookupError:
                    pass

    with SignalState(handled=(signal.SIGUSR1,)) as state:
        sender = threading.Thread(target=bombard)
        sender.start()
        try:
            results = await asyncio.gather(*(aiospawn.run(["true"]) for _ in range(300)))
        finally:
            stop.set()
            sender.join()
        await asyncio.sleep(0.05)
    codes = {result.returncode for result in results}
    assert state.handler_calls == []
    assert codes <= {0, -signal.SIGUSR1}
    assert sent[0] > 0


# -- fds ------------------------------------------------------------------------------------------


async def child_fds(api: str, **options) -> dict[int, str]:
    if api == "run":
        result = await aiospawn.run(LIST_FDS_WITH_TARGETS, stdout=PIPE, **options)
        return parse_fd_listing(result.stdout)
    if api == "exec":
        process = await aiospawn.create_subprocess_exec(*LIST_FDS_WITH_TARGETS, stdout=PIPE, **options)
        output, _ = await process.communicate()
        return parse_fd_listing(output)
    process = await aiospawn.open_process(LIST_FDS_WITH_TARGETS, stdin=None, stderr=None, **options)
    chunks = [chunk async for chunk in process.stdout]
    await process.aclose()
    return parse_fd_listing(b"".join(chunks))


class InheritableFds:
    """Twenty inheritable fds (pipes, a file, a socket pair), closed on exit."""

    def __enter__(self):
        import socket

        self.fds = []
        for _ in range(6):
            self.fds.extend(os.pipe())
        self.fds.append(os.open(os.devnull, os.O_RDONLY))
        self.sockets = socket.socketpair()
        self.fds.extend(sock.fileno() for sock in self.sockets)
        self.fds.append(os.dup2(self.fds[0], 700, inheritable=True))
        for fd in self.fds:
            os.set_inheritable(fd, True)
        return self

    def __exit__(self, *exc_info):
        for sock in self.sockets:
            sock.close()
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.mark.parametrize("api", APIS)
async def test_only_stdio_open(backend, api):
    with InheritableFds():
        listing = await child_fds(api)
    assert set(listing) == {0, 1, 2}


@pytest.mark.parametrize("api", APIS)
async def test_only_pass_fds_open(backend, api):
    with InheritableFds() as extra:
        passed = (extra.fds[3], 700)
        listing = await child_fds(api, pass_fds=passed)
    assert set(listing) == {0, 1, 2, *passed}


@pytest.mark.parametrize("api", APIS)
async def test_no_pidfd_or_status_pipe(backend, api):
    # close_fds=False passes every inheritable fd: aiospawn's own (the
    # pidfds of running siblings, the watcher epoll, the status pipe of
    # this very spawn) must not be among them.
    # Only the fds that the test runner itself left inheritable may pass.
    siblings = [await aiospawn.create_subprocess_exec("sleep", "30", stdout=PIPE) for _ in range(3)]
    try:
        inheritable = {fd for fd in open_fds() if os.get_inheritable(fd)}
        listing = await child_fds(api, close_fds=False)
    finally:
        for process in siblings:
            process.kill()
            await process.wait()
    assert set(listing) - {0, 1, 2} == inheritable - {0, 1, 2}
    assert [target for target in listing.values() if "pidfd" in target or "eventpoll" in target] == []


async def test_no_fds_from_other_thread(backend):
    # Another thread opens and closes inheritable fds while children spawn.
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            read_end, write_end = os.pipe()
            os.set_inheritable(read_end, True)
            os.close(read_end)
            os.close(write_end)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        listings = await asyncio.gather(*(child_fds("run") for _ in range(20)))
    finally:
        stop.set()
        thread.join()
    assert all(set(listing) == {0, 1, 2} for listing in listings)


# -- environment ------------------------------------------------------------------------------------


async def child_environment(api: str, env: dict) -> list[bytes]:
    argv = ["/usr/bin/env", "-0"]
    if api == "run":
        output = (await aiospawn.run(argv, stdout=PIPE, env=env)).stdout
    elif api == "exec":
        process = await aiospawn.create_subprocess_exec(*argv, stdout=PIPE, env=env)
        output, _ = await process.communicate()
    else:
        process = await aiospawn.open_process(argv, stdin=None, stderr=None, env=env)
        output = b"".join([chunk async for chunk in process.stdout])
        await process.aclose()
    return sorted(entry for entry in output.split(b"\0") if entry)


@pytest.mark.parametrize("api", APIS)
async def test_env_only_given(backend, api, monkeypatch):
    monkeypatch.setenv("AIOSPAWN_PARENT_ONLY", "must not reach the child")
    entries = await child_environment(api, {"ONE": "1", "TWO": "two words"})
    assert entries == [b"ONE=1", b"TWO=two words"]


@pytest.mark.parametrize("api", APIS)
async def test_env_empty_given(backend, api):
    assert await child_environment(api, {}) == []


async def test_env_inherited_after_setenv(backend, monkeypatch):
    # Changing os.environ between spawns reaches the next child (clone3
    # copies environ at each spawn).
    monkeypatch.setenv("AIOSPAWN_CHANGED", "first")
    first = await aiospawn.run(["sh", "-c", "echo $AIOSPAWN_CHANGED"], stdout=PIPE)
    monkeypatch.setenv("AIOSPAWN_CHANGED", "second")
    second = await aiospawn.run(["sh", "-c", "echo $AIOSPAWN_CHANGED"], stdout=PIPE)
    assert first.stdout == b"first\n"
    assert second.stdout == b"second\n"
