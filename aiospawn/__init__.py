"""aiospawn: fast, correct subprocesses for asyncio on Linux.

Children are created with clone3 and a pidfd, set up by a declarative
script of system calls, and awaited through the event loop's reader: no
SIGCHLD handler, no helper thread, no polling.
"""

from ._capabilities import Capabilities, capabilities
from ._errors import BackendUnavailableError, ExitStatusUnknownError
from ._install import install, is_installed, uninstall
from ._open_process import AnyioProcess, open_process
from ._process import Process, create_subprocess_exec, create_subprocess_shell
from ._results import CompletedProcess, ResourceUsage
from ._run import run
from ._stdio import DEVNULL, PIPE, PTY, STDOUT
from ._termination import KILL, Termination

__version__ = "0.1.0"

__all__ = [
    "AnyioProcess",
    "DEVNULL",
    "KILL",
    "PIPE",
    "PTY",
    "STDOUT",
    "BackendUnavailableError",
    "Capabilities",
    "CompletedProcess",
    "ExitStatusUnknownError",
    "Process",
    "ResourceUsage",
    "Termination",
    "capabilities",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "install",
    "is_installed",
    "open_process",
    "run",
    "uninstall",
]
