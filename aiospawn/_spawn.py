"""Creating a child through the native core."""

from __future__ import annotations

import errno
import os
from typing import Any

from . import _capabilities
from ._cgroup import Cgroup
from ._child import Child
from ._command import Command, Script
from ._core import ffi, lib
from ._errors import BackendUnavailableError, ExitStatusUnknownError
from ._options import make_cgroup
from ._stdio import Stdio
from ._watcher import Watcher

_STATUS_PIPE = lib.AIOSPAWN_REQUEST_STATUS_PIPE
_MAX_FREE_SLOTS = 64
_free_slots: list[Any] = []


def _take_slot() -> Any:
    if _free_slots:
        return _free_slots.pop()
    slot = lib.aiospawn_slot_new()
    if slot == ffi.NULL:
        error_number = ffi.errno
        raise OSError(error_number, f"allocating a child stack failed: {os.strerror(error_number)}")
    return slot


def _give_back(slot: Any) -> None:
    if len(_free_slots) < _MAX_FREE_SLOTS:
        _free_slots.append(slot)
    else:
        lib.aiospawn_slot_free(slot)


def spawn(
    watcher: Watcher,
    command: Command,
    script: Script,
    stdio: tuple[int, int, int],
    args: Any,
    report_exec: bool = False,
    cgroup: Any = None,
) -> Child:
    """Start a child and register it with watcher; return its handle.

    On the clone3 backend the parent does not wait for the exec, so an exec
    failure surfaces after the reap, from Child.raise_for_failure(). With
    report_exec, the child also gets a status pipe that reaches EOF at its
    exec or exit, so Child.wait_exec() can tell success early. Errors
    creating the child raise here and leave nothing behind.
    """
    backend = _capabilities.backend_id()
    if backend == lib.AIOSPAWN_BACKEND_POSIX_SPAWN and script.posix_spawn_problem is not None:
        chosen = _capabilities.capabilities()
        why = "AIOSPAWN_BACKEND forces it" if chosen.forced else "clone3 and clone are unavailable"
        raise BackendUnavailableError(
            f"the posix_spawn backend cannot apply '{script.posix_spawn_problem}'; "
            f"it is in use because {why} (see aiospawn.capabilities())"
        )

    request = ffi.new("struct aiospawn_request *")
    request.paths = command.paths
    request.argv = command.argv
    request.envp = command.envp
    request.steps = script.steps
    request.nsteps = script.count
    request.stdio[0] = stdio[0]
    request.stdio[1] = stdio[1]
    request.stdio[2] = stdio[2]
    request.cgroup_fd = -1
    if report_exec and backend == lib.AIOSPAWN_BACKEND_CLONE3:
        request.flags = _STATUS_PIPE
    if cgroup is not None:
        if backend != lib.AIOSPAWN_BACKEND_CLONE3:
            raise BackendUnavailableError(
                "cgroup= needs the clone3 backend (CLONE_INTO_CGROUP); this process uses "
                f"{_capabilities.capabilities().backend} (see aiospawn.capabilities())"
            )
        request.cgroup_fd = cgroup.fd

    child = Child(watcher, command, script, request, args)
    try:
        slot = _take_slot()
    except BaseException:
        watcher.release_token(child._token)
        raise
    spawned = ffi.new("struct aiospawn_spawned *")
    result = lib.aiospawn_spawn(backend, request, slot, watcher.fd, child._token, spawned)

    if result != 0:
        failure = (slot.failed_step, slot.failed_errno, slot.failed_path)
        _give_back(slot)
        watcher.release_token(child._token)
        if result == lib.AIOSPAWN_CHILD_LOST:
            raise ExitStatusUnknownError(spawned.pid, args)
        if result == lib.AIOSPAWN_CHILD_FAILED:
            # posix_spawn reports a failed chdir with the same errno as a
            # failed exec; the cwd is to blame if it is not a directory.
            chdir = script.chdir_index
            if chdir is not None and not os.path.isdir(script.filenames[chdir]):
                failure = (chdir, failure[1], -1)
            child._failure = failure
            child.raise_for_failure()
        if failure[0] >= 0 and result == -errno.ENOTSUP:
            raise BackendUnavailableError(
                f"the posix_spawn backend cannot apply '{script.descriptions[failure[0]]}'"
            )
        raise OSError(-result, f"creating the child failed: {os.strerror(-result)}")

    child.pid = spawned.pid
    child._pidfd = spawned.pidfd
    child.cgroup = cgroup
    child._status_fd = spawned.status_fd
    if backend == lib.AIOSPAWN_BACKEND_CLONE3:
        # The child may still be running on the slot's stack.
        child._slot = slot
        child._release_slot = _give_back
    else:
        # The parent resumed only after exec or exit: the record is final.
        if slot.failed_step != lib.AIOSPAWN_FAILED_NONE:
            child._failure = (slot.failed_step, slot.failed_errno, slot.failed_path)
        _give_back(slot)
    return child


def spawn_with_stdio(
    watcher: Watcher,
    command: Command,
    script: Script,
    args: Any,
    stdio: Stdio,
    cgroup: Any,
    *,
    kill_tree: bool,
    leads_group: bool,
    report_exec: bool = False,
) -> tuple[Child, Cgroup | None]:
    """Create the cgroup that cgroup= requests and spawn the child into it with stdio's fds.

    stdio and the cgroup belong to the caller until this returns. On
    failure every fd of stdio is closed and the cgroup removed; on success
    the child's ends are closed and the parent's ends stay with stdio.
    """
    try:
        tree = make_cgroup(cgroup)
    except BaseException:
        stdio.close_child_ends()
        stdio.close_parent_ends()
        raise
    try:
        child = spawn(
            watcher, command, script, stdio.child_fd_triple(), args, report_exec=report_exec, cgroup=tree
        )
    except BaseException:
        stdio.close_parent_ends()
        if tree is not None:
            tree.remove()
        raise
    finally:
        stdio.close_child_ends()
        if tree is not None:
            tree.close_directory_fd()
    child.kill_tree = bool(kill_tree)
    child.leads_group = leads_group
    return child, tree


__all__ = ["spawn", "spawn_with_stdio"]
