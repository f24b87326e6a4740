"""Turning the spawn options shared by run, create_subprocess_exec and open_process into a request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cgroup import Cgroup
from ._command import Command, Script, build_script, command_for


def prepare(
    args: Any,
    *,
    executable: Any = None,
    shell: bool = False,
    env: Mapping[Any, Any] | None = None,
    cwd: Any = None,
    close_fds: bool = True,
    pass_fds: Any = (),
    start_new_session: bool = False,
    process_group: int | None = None,
    umask: int = -1,
    restore_signals: bool = True,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    rlimits: Any = None,
    pdeathsig: Any = None,
    kill_tree: bool = False,
    pty_fd: int | None = None,
) -> tuple[Command, Script, bool]:
    """Validate the options and return the command, the script and whether the child leads a group."""
    # A new session (start_new_session, or a pseudo-terminal's) already
    # makes the child lead its own group, and setpgid would then fail.
    if kill_tree and not start_new_session and pty_fd is None:
        if process_group is None:
            process_group = 0
        elif process_group != 0:
            raise ValueError(
                f"kill_tree=True needs the child to lead its own process group, but "
                f"process_group={process_group} joins another; drop process_group or pass 0"
            )
    command = command_for(args, executable, shell, env)
    script = build_script(
        cwd,
        close_fds,
        pass_fds,
        start_new_session,
        process_group,
        umask,
        restore_signals,
        user,
        group,
        extra_groups,
        rlimits=rlimits,
        pdeathsig=pdeathsig,
        controlling_tty=pty_fd,
    )
    leads_group = bool(start_new_session) or process_group == 0 or pty_fd is not None
    return command, script, leads_group


def make_cgroup(cgroup: Any) -> Cgroup | None:
    """Create the cgroup that cgroup= requests: True for one under this process's own, or a parent path."""
    if cgroup is None or cgroup is False:
        return None
    if cgroup is True:
        return Cgroup()
    if isinstance(cgroup, str):
        return Cgroup(parent=cgroup)
    raise TypeError(
        f"cgroup must be True, False, None or the path of a parent cgroup, not {type(cgroup).__name__}"
    )
