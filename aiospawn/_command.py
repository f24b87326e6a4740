"""Turning subprocess-style arguments into a native spawn request.

Everything here runs in the parent before anything is spawned, so bad
input raises ValueError or TypeError and leaves nothing behind. The result
is plain C data: the candidate executable paths (PATH searched here, as
subprocess does), argv, envp and the housekeeping script of steps that the
child runs between clone and execve.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from ._core import ffi, lib
from ._errors import UnknownNameError

DEFAULT_SHELL = "/bin/sh"

# Signals that CPython ignores at startup and subprocess restores to
# SIG_DFL in the child when restore_signals is true.
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


def _encode(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        encoded = value
    elif isinstance(value, (str, os.PathLike)):
        encoded = os.fsencode(value)
    else:
        raise TypeError(f"{what} must be str, bytes or os.PathLike, not {type(value).__name__}")
    if b"\0" in encoded:
        raise ValueError(f"{what} contains a NUL byte, which no C string can carry; remove it")
    return encoded


def _pack(strings: Sequence[bytes]) -> tuple[Any, Any]:
    """Return a NULL-terminated char*[] over one buffer holding every string."""
    blob = b"\0".join(strings) + b"\0"
    buffer = ffi.from_buffer(blob)
    pointers = ffi.new("char *[]", len(strings) + 1)
    offset = 0
    for index, item in enumerate(strings):
        pointers[index] = buffer + offset
        offset += len(item) + 1
    return pointers, (blob, buffer)


class Command:
    """argv, candidate paths and envp of one spawn, as C arrays."""

    __slots__ = ("program", "argv", "paths", "envp", "_keepalive")

    def __init__(self, args: Any, executable: Any, shell: bool, env: Mapping[Any, Any] | None):
        if env is not None and not isinstance(env, Mapping):
            raise TypeError(f"env must be a mapping of names to values, not {type(env).__name__}")
        items: list[Any]
        if isinstance(args, (str, bytes)):
            items = [args]
        elif isinstance(args, os.PathLike):
            if shell:
                raise TypeError("args must be a str or bytes command line when shell is true, not a path")
            items = [args]
        elif isinstance(args, Sequence) or hasattr(args, "__iter__"):
            items = list(args)
        else:
            raise TypeError(
                f"args must be a str, bytes, os.PathLike or a sequence of them, not {type(args).__name__}"
            )
        if shell:
            items = [DEFAULT_SHELL, "-c", *items]
            if executable is not None:
                items[0] = executable
        if not items:
            raise ValueError("args is empty: pass at least the program to run, for example ['true']")

        argv = [_encode(item, f"args[{index}]") for index, item in enumerate(items)]
        program = executable if executable is not None else items[0]
        program_bytes = _encode(program, "executable") if executable is not None else argv[0]
        self.program = program

        if b"/" in program_bytes:
            paths: Sequence[bytes] = (program_bytes,)
        else:
            paths = tuple(os.path.join(directory, program_bytes) for directory in _exec_dirs(env))
            if not paths:
                paths = (program_bytes,)

        self.argv, argv_keep = _pack(argv)
        self.paths, paths_keep = _pack(paths)
        if env is None:
            self.envp = ffi.NULL
            env_keep = None
        else:
            self.envp, env_keep = _pack(_encode_env(env))
        self._keepalive = (argv_keep, paths_keep, env_keep)


def _exec_dirs(env: Mapping[Any, Any] | None) -> tuple[bytes, ...]:
    """Return PATH's directories as subprocess searches them."""
    if env is None:
        path = os.environ.get("PATH")
    else:
        path = env.get("PATH", env.get(b"PATH") if b"PATH" in env else None)
    return _split_path(path if path is not None else os.defpath)


@functools.lru_cache(maxsize=32)
def _split_path(path: str | bytes) -> tuple[bytes, ...]:
    return tuple(os.fsencode(directory) for directory in os.get_exec_path({"PATH": os.fsdecode(path)}))


def _encode_env(env: Mapping[Any, Any]) -> list[bytes]:
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of names to values, not {type(env).__name__}")
    entries = []
    for key, value in env.items():
        name = _encode(key, f"env key {key!r}")
        if not name or b"=" in name:
            raise ValueError(
                f"env key {key!r} is not a valid variable name: it must be non-empty and contain no '='"
            )
        entries.append(name + b"=" + _encode(value, f"env[{key!r}]"))
    return entries


class Script:
    """The housekeeping steps as a C array, with a description of each for errors."""

    __slots__ = (
        "steps",
        "count",
        "descriptions",
        "filenames",
        "posix_spawn_problem",
        "chdir_index",
        "_keepalive",
    )

    def __init__(self, steps: list[tuple[int, int, int, int, int, Any, str, Any, bool]]):
        self.count = len(steps)
        self.steps = ffi.new("struct aiospawn_step[]", max(1, self.count))
        self.descriptions = []
        self.filenames = []
        self.posix_spawn_problem = None
        self.chdir_index = None
        keepalive = []
        for index, (op, a, b, x, y, path, description, filename, posix_ok) in enumerate(steps):
            step = self.steps[index]
            step.op = op
            step.a = a
            step.b = b
            step.x = x
            step.y = y
            if op == lib.AIOSPAWN_STEP_CHDIR:
                self.chdir_index = index
            if isinstance(path, bytes):
                buffer = ffi.new("char[]", path)
                keepalive.append(buffer)
                step.path = buffer
            elif path is not None:
                step.path = path
            self.descriptions.append(description)
            self.filenames.append(filename)
            if not posix_ok and self.posix_spawn_problem is None:
                self.posix_spawn_problem = description
        self._keepalive = keepalive


def _check_fd(fd: Any, what: str) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"{what} must be an int file descriptor, not {type(fd).__name__}")
    if fd < 0:
        raise ValueError(f"{what}={fd} is negative; pass an open file descriptor")
    try:
        os.get_inheritable(fd)
    except (OSError, OverflowError):
        raise ValueError(f"{what}={fd} is not an open file descriptor; open it first") from None
    return fd


def build_script(
    cwd: Any,
    close_fds: bool,
    pass_fds: Any,
    start_new_session: bool,
    process_group: Any,
    umask: Any,
    restore_signals: bool,
    user: Any = None,
    group: Any = None,
    extra_groups: Any = None,
    *,
    rlimits: Any = None,
    pdeathsig: Any = None,
    controlling_tty: int | None = None,
) -> Script:
    """Validate the housekeeping options and return their script (cached).

    controlling_tty is the child fd (0, 1 or 2) of a pseudo-terminal that
    becomes the child's controlling terminal; it implies a new session.
    """
    cwd_bytes = None if cwd is None else _encode(cwd, "cwd")
    fds = tuple(sorted({_check_fd(fd, "pass_fds item") for fd in pass_fds}))
    if fds:
        close_fds = True
    if process_group is not None:
        if isinstance(process_group, bool) or not isinstance(process_group, int):
            raise TypeError(f"process_group must be an int, not {type(process_group).__name__}")
        if not 0 <= process_group <= _PID_T_MAX:
            raise ValueError(
                f"process_group={process_group} is not a process group id; "
                "use 0 for a new group or the pid of an existing group's leader"
            )
    if isinstance(umask, bool) or not isinstance(umask, int):
        raise TypeError(f"umask must be an int, not {type(umask).__name__}")
    if umask > _C_INT_MAX:
        raise ValueError(f"umask={umask:#o} is too large for an int; pass a permission mask such as 0o022")
    gids = (
        None if extra_groups is None else tuple(_group_id(item, "extra_groups item") for item in extra_groups)
    )
    gid = None if group is None else _group_id(group, "group")
    uid = None if user is None else _user_id(user)
    limits = None if rlimits is None else _parse_rlimits(rlimits)
    # The parent's pid is part of the cache key: a forked process must not
    # reuse a script that checks for its parent's parent.
    death_signal = None if pdeathsig is None else (_parse_signal(pdeathsig, "pdeathsig"), os.getpid())
    if controlling_tty is not None:
        start_new_session = True
    return _cached_script(
        cwd_bytes,
        cwd,
        bool(close_fds),
        fds,
        bool(start_new_session),
        process_group,
        umask,
        bool(restore_signals),
        gids,
        gid,
        uid,
        limits,
        death_signal,
        controlling_tty,
    )


_RLIM_INFINITY = (1 << 64) - 1


def _limit_value(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"rlimits[{name!r}] values must be ints, not {type(value).__name__}")
    if value == -1:  # resource.RLIM_INFINITY
        return _RLIM_INFINITY
    if not 0 <= value <= _RLIM_INFINITY:
        raise ValueError(
            f"rlimits[{name!r}] value {value} is outside 0..2**64-1; use resource.RLIM_INFINITY for no limit"
        )
    return value


def _parse_rlimits(rlimits: Any) -> tuple[tuple[int, str, int, int], ...]:
    """Return ((resource, name, soft, hard), ...) from names or resource constants."""
    import resource

    if not isinstance(rlimits, Mapping):
        raise TypeError(
            f"rlimits must be a mapping such as {{'RLIMIT_NOFILE': 256}}, not {type(rlimits).__name__}"
        )
    parsed = []
    for key, value in rlimits.items():
        if isinstance(key, str):
            name = key if key.startswith("RLIMIT_") else "RLIMIT_" + key
            number = getattr(resource, name, None)
            if not isinstance(number, int):
                known = ", ".join(sorted(n for n in dir(resource) if n.startswith("RLIMIT_")))
                raise ValueError(f"rlimits key {key!r} is not a resource limit; use one of {known}")
        elif isinstance(key, int) and not isinstance(key, bool):
            number = key
            name = next(
                (n for n in dir(resource) if n.startswith("RLIMIT_") and getattr(resource, n) == key),
                "",
            )
            if not name:
                raise ValueError(
                    f"rlimits key {key} is not a resource limit; use a resource.RLIMIT_* constant"
                )
        else:
            raise TypeError(
                f"rlimits keys must be names like 'RLIMIT_NOFILE' or resource constants, not {key!r}"
            )
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"rlimits[{key!r}] must be a limit or a (soft, hard) pair, not {value!r}")
            soft, hard = _limit_value(value[0], name), _limit_value(value[1], name)
        else:
            soft = hard = _limit_value(value, name)
        if soft > hard:
            raise ValueError(
                f"rlimits[{key!r}]: the soft limit {value[0]} is above the hard limit {value[1]}"
            )
        parsed.append((number, name, soft, hard))
    return tuple(parsed)


def _parse_signal(value: Any, what: str) -> int:
    import signal

    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a signal number such as signal.SIGKILL, not {type(value).__name__}")
    if not 0 < value < signal.NSIG:
        raise ValueError(f"{what}={value} is not a valid signal number")
    return int(value)


# uid_t and gid_t are 32 bits wide, and their all-ones value means "leave
# unchanged" to setresuid and setresgid, so it is not a valid id. pid_t is
# signed.
_ID_MAX = (1 << 32) - 2
_PID_T_MAX = _C_INT_MAX = (1 << 31) - 1


def _group_id(group: Any, what: str) -> int:
    if isinstance(group, str):
        import grp

        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            raise UnknownNameError(f"{what} {group!r}: no such group in the group database") from None
    if isinstance(group, bool) or not isinstance(group, int):
        raise TypeError(f"{what} must be a group name or an int gid, not {type(group).__name__}")
    if not 0 <= group <= _ID_MAX:
        raise ValueError(f"{what}={group} is not a gid; pass a value from 0 to {_ID_MAX}")
    return group


def _user_id(user: Any) -> int:
    if isinstance(user, str):
        import pwd

        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            raise UnknownNameError(f"user {user!r}: no such user in the password database") from None
    if isinstance(user, bool) or not isinstance(user, int):
        raise TypeError(f"user must be a user name or an int uid, not {type(user).__name__}")
    if not 0 <= user <= _ID_MAX:
        raise ValueError(f"user={user} is not a uid; pass a value from 0 to {_ID_MAX}")
    return user


@functools.lru_cache(maxsize=64)
def _cached_script(
    cwd_bytes: bytes | None,
    cwd: Any,
    close_fds: bool,
    pass_fds: tuple[int, ...],
    start_new_session: bool,
    process_group: int | None,
    umask: int,
    restore_signals: bool,
    extra_groups: tuple[int, ...] | None,
    group: int | None,
    user: int | None,
    rlimits: tuple[tuple[int, str, int, int], ...] | None,
    pdeathsig: tuple[int, int] | None,
    controlling_tty: int | None,
) -> Script:
    # Each entry: op, a, b, x, y, path, description, filename, posix_spawn can do it.
    # The order follows CPython's _posixsubprocess, so the same failure
    # surfaces first: cwd, umask, signals, session, group, credentials
    # (supplementary groups, then gid, then uid, the only safe order), fds.
    # The controlling terminal needs the new session. Limits come before
    # the credentials change, because it could forbid raising them. The
    # parent-death signal comes after it, because changing credentials
    # clears that signal.
    steps: list[tuple[int, int, int, int, int, Any, str, Any, bool]] = []

    if cwd_bytes is not None:
        steps.append((lib.AIOSPAWN_STEP_CHDIR, 0, 0, 0, 0, cwd_bytes, f"chdir to cwd {cwd!r}", cwd, True))
    if umask >= 0:
        steps.append((lib.AIOSPAWN_STEP_UMASK, umask, 0, 0, 0, None, f"umask {umask:#o}", None, False))
    if restore_signals:
        mask = 0
        for number in _RESTORED_SIGNALS:
            mask |= 1 << (int(number) - 1)
        steps.append(
            (
                lib.AIOSPAWN_STEP_SIGDEFAULT,
                0,
                0,
                mask,
                0,
                None,
                "restore SIGPIPE and SIGXFSZ to SIG_DFL (restore_signals)",
                None,
                True,
            )
        )
    if start_new_session:
        steps.append((lib.AIOSPAWN_STEP_SETSID, 0, 0, 0, 0, None, "setsid (start_new_session)", None, True))
    if process_group is not None:
        steps.append(
            (
                lib.AIOSPAWN_STEP_SETPGID,
                process_group,
                0,
                0,
                0,
                None,
                f"setpgid to {process_group} (process_group)",
                None,
                True,
            )
        )
    if controlling_tty is not None:
        steps.append(
            (
                lib.AIOSPAWN_STEP_SETCTTY,
                controlling_tty,
                0,
                0,
                0,
                None,
                f"make the pseudo-terminal on fd {controlling_tty} the controlling terminal",
                None,
                False,
            )
        )
    for number, name, soft, hard in rlimits or ():
        shown = ", ".join("RLIM_INFINITY" if v == _RLIM_INFINITY else str(v) for v in (soft, hard))
        steps.append(
            (
                lib.AIOSPAWN_STEP_SETRLIMIT,
                number,
                0,
                _as_int64(soft),
                _as_int64(hard),
                None,
                f"setrlimit {name} to ({shown}) (rlimits)",
                None,
                False,
            )
        )
    keepalive: list[Any] = []
    if extra_groups is not None:
        gid_array = ffi.new("uint32_t[]", list(extra_groups) or [0])
        keepalive.append(gid_array)
        steps.append(
            (
                lib.AIOSPAWN_STEP_SETGROUPS,
                len(extra_groups),
                0,
                0,
                0,
                gid_array,
                f"setgroups to {list(extra_groups)} (extra_groups)",
                None,
                False,
            )
        )
    if group is not None:
        steps.append(
            (lib.AIOSPAWN_STEP_SETGID, 0, 0, group, 0, None, f"setresgid to {group} (group)", None, False)
        )
    if user is not None:
        steps.append(
            (lib.AIOSPAWN_STEP_SETUID, 0, 0, user, 0, None, f"setresuid to {user} (user)", None, False)
        )
    if pdeathsig is not None:
        death_signal, parent_pid = pdeathsig
        steps.append(
            (
                lib.AIOSPAWN_STEP_PDEATHSIG,
                death_signal,
                parent_pid,
                0,
                0,
                None,
                f"set the parent-death signal to {death_signal} (pdeathsig)",
                None,
                False,
            )
        )
    if close_fds:
        first = 3
        for fd in pass_fds:
            if fd > first:
                steps.append(
                    (
                        lib.AIOSPAWN_STEP_CLOSE_RANGE,
                        first,
                        fd - 1,
                        0,
                        0,
                        None,
                        f"close fds {first}-{fd - 1} (close_fds)",
                        None,
                        True,
                    )
                )
            first = max(first, fd + 1)
        steps.append(
            (
                lib.AIOSPAWN_STEP_CLOSE_RANGE,
                first,
                -1,
                0,
                0,
                None,
                f"close fds from {first} on (close_fds)",
                None,
                True,
            )
        )
    for fd in pass_fds:
        steps.append(
            (lib.AIOSPAWN_STEP_INHERIT, fd, 0, 0, 0, None, f"keep fd {fd} open (pass_fds)", None, True)
        )
    script = Script(steps)
    script._keepalive.extend(keepalive)
    return script


def _as_int64(value: int) -> int:
    """Reinterpret an unsigned 64-bit limit as the int64_t the step field holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


_command_cache: dict[tuple[Any, ...], Command] = {}
_COMMAND_CACHE_SIZE = 128


def command_for(args: Any, executable: Any, shell: bool, env: Mapping[Any, Any] | None) -> Command:
    """Return the Command for these arguments, reusing a cached one when possible.

    Programs that spawn the same command again and again (test runners,
    build tools) skip the encoding and the PATH search. Only commands made
    of str or bytes, inheriting the environment, are cached, keyed by PATH
    so that a changed PATH is searched again. A Command is read-only C data,
    so concurrent spawns may share it.
    """
    if env is not None:
        return Command(args, executable, shell, env)
    if isinstance(args, (list, tuple)):
        key_args: Any = tuple(args)
    elif isinstance(args, (str, bytes)):
        key_args = args
    else:
        return Command(args, executable, shell, env)
    key = (key_args, executable, shell, os.environ.get("PATH"))
    try:
        command = _command_cache.get(key)
    except TypeError:  # an unhashable item: build it without the cache
        return Command(args, executable, shell, env)
    if command is None:
        for item in key_args if isinstance(key_args, tuple) else ():
            if not isinstance(item, (str, bytes)):
                return Command(args, executable, shell, env)
        command = Command(args, executable, shell, env)
        if len(_command_cache) >= _COMMAND_CACHE_SIZE:
            _command_cache.clear()
        _command_cache[key] = command
    return command
