"""Run CPython's own asyncio subprocess tests against aiospawn.

The test module is the running interpreter's stdlib copy,
``test.test_asyncio.test_subprocess``, imported and run unmodified with
unittest. One of these modes is applied first:

replace
    ``asyncio.create_subprocess_exec`` and ``asyncio.create_subprocess_shell``
    (and the same names in ``asyncio.subprocess``) become aiospawn's. Tests
    that call ``loop.subprocess_exec`` directly still get asyncio's own
    transport in this mode, and the report lists them in ``STOCK`` lines.

install
    Every event loop made through the event loop policy (which is how
    ``asyncio.new_event_loop``, ``asyncio.run`` and ``asyncio.Runner`` make
    theirs) gets ``aiospawn.install(loop)`` before it is returned, so every
    subprocess the tests start on such a loop comes from aiospawn.

stock
    Nothing is changed: the baseline, asyncio's own subprocess support
    running the same tests on the same machine.

Usage::

    python tests/compat/run_cpython_asyncio_subprocess.py --mode replace|install|stock [--verbose] [-k NAME]

Output: a header, and one line per test with --verbose. Then comes the
summary line ``N passed, N failed, N skipped`` (errors count as failed)
and a ``FAILED`` line per failed test. A ``STOCK`` line names each test in
which asyncio's own subprocess transport started a child, and a ``LEFT``
line each test after which a child of this process was still there. The
last line counts the children that aiospawn and asyncio's own transport
started in all.

Exit status: 0 when every test passed or was skipped, 1 when any failed,
4 when the interpreter has no usable test package (the reason is printed),
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import asyncio.subprocess
import faulthandler
import glob
import importlib
import os
import sys
import time
import traceback
import unittest
from types import TracebackType

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_TEST_PACKAGE = 4

TEST_MODULE = "test.test_asyncio.test_subprocess"
MODES = ("replace", "install", "stock")

SETTLE_SECONDS = 2.0


# -- the modes --------------------------------------------------------------------


def apply_replace() -> None:
    """Point asyncio's create_subprocess_* names at aiospawn's."""
    import aiospawn

    for namespace in (asyncio, asyncio.subprocess):
        namespace.create_subprocess_exec = aiospawn.create_subprocess_exec  # type: ignore[attr-defined]
        namespace.create_subprocess_shell = aiospawn.create_subprocess_shell  # type: ignore[attr-defined]


def apply_install() -> None:
    """Install aiospawn on every loop that an event loop policy creates.

    The wrapper sits on the policy base class, so it also covers the policy
    objects created after a test resets the policy with
    ``asyncio.set_event_loop_policy(None)``.
    """
    import aiospawn

    policy_class = asyncio.events.BaseDefaultEventLoopPolicy
    original = policy_class.new_event_loop

    def new_event_loop(self: asyncio.events.BaseDefaultEventLoopPolicy) -> asyncio.AbstractEventLoop:
        loop = original(self)
        aiospawn.install(loop)
        return loop

    new_event_loop.__doc__ = original.__doc__
    policy_class.new_event_loop = new_event_loop  # type: ignore[method-assign]


# -- counting who started each child ----------------------------------------------


class SpawnCounter:
    """Counts the children started by aiospawn and by asyncio's own transport."""

    def __init__(self) -> None:
        self.aiospawn = 0
        self.stock = 0

    def hook(self) -> None:
        from asyncio import unix_events

        from aiospawn import _transport

        def counting(cls: type, attribute: str) -> None:
            original = cls.__dict__["_start"]

            def _start(transport: object, *args: object, **kwargs: object) -> object:
                setattr(self, attribute, getattr(self, attribute) + 1)
                return original(transport, *args, **kwargs)

            cls._start = _start  # type: ignore[attr-defined]

        counting(_transport.SubprocessTransport, "aiospawn")
        # The Popen-based transport of asyncio's Unix event loop.
        stock_transport = unix_events._UnixSubprocessTransport  # type: ignore[attr-defined]
        counting(stock_transport, "stock")


# -- children left behind ---------------------------------------------------------


def child_pids() -> set[int]:
    """Every child of this process, alive or zombie, whichever thread created it."""
    pids: set[int] = set()
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as handle:
                pids.update(int(word) for word in handle.read().split())
        except OSError:
            continue
    return pids


def leftover_children(before: set[int]) -> list[int]:
    """Return the children that appeared since before, waiting a little for them to go."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        left = sorted(child_pids() - before)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


# -- the result --------------------------------------------------------------------

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


def format_error(err: ExcInfo) -> str:
    """Format a failed test's exception and traceback as unittest prints them."""
    return "".join(traceback.format_exception(*err))


class Result(unittest.TestResult):
    """Records one outcome per test and what happened around it."""

    def __init__(self, counter: SpawnCounter, verbose: bool) -> None:
        super().__init__()
        self.counter = counter
        self.verbose = verbose
        self.outcomes: dict[str, str] = {}
        self.details: dict[str, str] = {}
        self.stock_tests: dict[str, int] = {}
        self.leftovers: dict[str, list[int]] = {}
        self._children_before: set[int] = set()
        self._stock_before = 0
        self._started = 0.0

    @staticmethod
    def name(test: unittest.TestCase) -> str:
        return test.id()

    def _record(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        name = self.name(test)
        # A test whose teardown fails after it passed counts as failed.
        if self.outcomes.get(name) == "failed":
            return
        self.outcomes[name] = outcome
        if detail:
            self.details[name] = detail

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        if self.verbose:
            print(f"start   {self.name(test)}", flush=True)
        self._children_before = child_pids()
        self._stock_before = self.counter.stock
        self._started = time.monotonic()

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        name = self.name(test)
        stock = self.counter.stock - self._stock_before
        if stock:
            self.stock_tests[name] = stock
        left = leftover_children(self._children_before)
        if left:
            self.leftovers[name] = left
        if self.verbose:
            outcome = self.outcomes.get(name, "?")
            print(f"{outcome:7} {name} ({time.monotonic() - self._started:.2f}s)", flush=True)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", format_error(err))

    def addError(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addError(test, err)
        detail = format_error(err)
        if isinstance(test, unittest.TestCase):
            self._record(test, "failed", detail)
        else:
            # A module or class fixture failed: unittest passes a stand-in.
            name = str(test)
            self.outcomes[name] = "failed"
            self.details[name] = detail

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", "unexpected success")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: ExcInfo | None) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record(test, "failed", format_error(err))

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)


# -- running -----------------------------------------------------------------------


def import_test_module() -> object:
    """Import the stdlib test module, or print why it cannot be imported and exit with status 4."""
    try:
        return importlib.import_module(TEST_MODULE)
    except unittest.SkipTest as reason:
        print(f"skipped: {TEST_MODULE} skips itself on this interpreter: {reason}")
    except ImportError as error:
        print(
            f"skipped: cannot import {TEST_MODULE} ({type(error).__name__}: {error}); "
            f"this Python ({sys.executable}) seems to lack its test package, which some "
            "distributions ship separately (Debian: libpython3.X-testsuite)"
        )
    sys.exit(EXIT_NO_TEST_PACKAGE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True, help="how aiospawn is put in place")
    parser.add_argument("--verbose", action="store_true", help="print each test and the failures' tracebacks")
    parser.add_argument(
        "--timeout",
        type=float,
        default=280.0,
        help="seconds after which every thread's stack is printed and the run ends (default 280)",
    )
    parser.add_argument(
        "-k",
        dest="patterns",
        metavar="NAME",
        action="append",
        default=[],
        help="run only the tests whose name contains NAME, like unittest -k (repeatable)",
    )
    options = parser.parse_args(argv)

    import aiospawn

    counter = SpawnCounter()
    counter.hook()
    if options.mode == "replace":
        apply_replace()
    elif options.mode == "install":
        apply_install()

    module = import_test_module()
    print(
        f"Python {sys.version.split()[0]}, mode {options.mode}, "
        f"aiospawn {aiospawn.__version__} from {os.path.dirname(aiospawn.__file__)}, "
        f"tests from {module.__file__}",  # type: ignore[attr-defined]
        flush=True,
    )

    if options.timeout > 0:
        faulthandler.dump_traceback_later(options.timeout, exit=True)
    loader = unittest.TestLoader()
    if options.patterns:
        loader.testNamePatterns = [
            f"*{pattern}*" if "*" not in pattern else pattern for pattern in options.patterns
        ]
    suite = loader.loadTestsFromModule(module)  # type: ignore[arg-type]
    result = Result(counter, options.verbose)
    try:
        suite.run(result)
    finally:
        faulthandler.cancel_dump_traceback_later()

    failed = sorted(name for name, outcome in result.outcomes.items() if outcome == "failed")
    if options.verbose:
        for name in failed:
            print(f"\n=== {name}\n{result.details.get(name, '')}")
    print(f"{result.count('passed')} passed, {len(failed)} failed, {result.count('skipped')} skipped")
    for name in failed:
        print(f"FAILED {name}")
    for name, count in sorted(result.stock_tests.items()):
        print(f"STOCK {name}: asyncio's own transport started {count} child(ren)")
    for name, pids in sorted(result.leftovers.items()):
        print(f"LEFT {name}: child pid(s) {', '.join(map(str, pids))} still present after the test")
    print(f"children started: {counter.aiospawn} by aiospawn, {counter.stock} by asyncio's own transport")
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(EXIT_FAILED)
