"""Run modules, classes and the tests in each in a seeded random order: ``TEST_FRAMEWORK_SHUFFLE``.

A test that passes alone but fails after another one depends on what that
one left behind (a committed row, a module global). The default order hides
such pairs; a shuffled order finds them, and the same seed repeats it::

    TEST_FRAMEWORK_SHUFFLE=1234 python -m unittest discover
    TEST_FRAMEWORK_SHUFFLE=random nose2 -v        # prints the seed it picked
    TEST_FRAMEWORK_SHUFFLE=1234 pytest -v

Each module, each class and each test gets a rank from a hash of the seed and
its name; sorting by (module rank, class rank, test rank) keeps a module's
classes together and a class's tests together (a class owns its loop and
connection, a module its ``setUpModule``). The rank of a name does not depend
on what else was collected, so a narrower selection, or another runner
collecting the same tests, runs them in the same relative order, and
``python -m test_framework bisect --seed N`` rebuilds the order of a run.

Runners: unittest (``python -m unittest``, ``unittest.main()``) through
``install_for_unittest``, which the package runs on import; the nose2 plugin
(``test_framework.nose2_plugin``, which must be loaded) and the pytest plugin
call ``ordered`` themselves.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import sys
import unittest
from typing import Callable, Iterable, Iterator, TypeVar

from test_framework.config import ENVIRONMENT_KEYS, run_setting
from test_framework.errors import ConfigurationError

SHUFFLE_ENVIRONMENT = ENVIRONMENT_KEYS["shuffle"]
RANDOM_SEEDS = 10**6  # short enough to type back
T = TypeVar("T")
Describe = Callable[[T], tuple[str, str, str]]


def announcement(seed: int) -> str:
    return (f"test_framework: shuffled with seed {seed} "
            f"({SHUFFLE_ENVIRONMENT}={seed} repeats this order)")


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def current_seed(*, announce: Callable[[str], None] = _to_stderr) -> int | None:
    """Return the seed of this run, or None when shuffling is off.

    ``random`` picks a seed once: it is written back to the environment, so
    later calls and child processes (pytest-xdist workers, which must all
    collect the same order) use the same one, and announced once.
    """
    seed = run_setting("shuffle").value
    if seed != "random":
        return seed
    seed = random.SystemRandom().randrange(RANDOM_SEEDS)
    os.environ[SHUFFLE_ENVIRONMENT] = str(seed)
    announce(announcement(seed))
    return seed


def ordered(items: Iterable[T], seed: int, describe: Describe) -> list[T]:
    """Sort ``items`` by seeded ranks; ``describe(item)`` gives (module, class, test) names."""
    def key(item: T) -> tuple:
        module, test_class, test = describe(item)
        return (_rank(seed, module), module, _rank(seed, module, test_class), test_class,
                _rank(seed, module, test_class, test), test)
    return sorted(items, key=key)


def _rank(seed: int, *names: str) -> bytes:
    """Stable across processes and Python versions, unlike ``hash()``."""
    text = "\0".join((str(seed), *names)).encode("utf-8")
    return hashlib.blake2b(text, digest_size=8).digest()


def describe_unittest(test: unittest.TestCase) -> tuple[str, str, str]:
    test_class = type(test)
    return test_class.__module__, test_class.__qualname__, test.id().rpartition(".")[2]


def leaves(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    """The tests of a nested suite, in the order it would run them."""
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from leaves(test)
        else:
            yield test


def ordered_suite(suite: unittest.TestSuite, seed: int) -> unittest.TestSuite:
    """A flat suite of ``suite``'s tests in the seed's order.

    unittest sets classes and modules up when the class of consecutive tests
    changes, not by the suite's nesting, so a flat suite runs them as usual.
    """
    return unittest.TestSuite(ordered(leaves(suite), seed, describe_unittest))


def install_for_unittest() -> None:
    """Reorder the suite ``unittest.main`` (``python -m unittest``) is about to run.

    ``TestProgram`` imports the test modules (and so this package) while it
    loads them, then calls ``runTests``; wrapping that public method is the
    one seam that sees the whole loaded suite before it runs, without a
    custom runner or loader. Suites run by other means (nose2, pytest, or a
    suite a test runs itself) are not touched. Idempotent.
    """
    run_tests = unittest.TestProgram.runTests
    if getattr(run_tests, "shuffles_tests", False):
        return

    @functools.wraps(run_tests)
    def runTests(program: unittest.TestProgram) -> None:
        try:
            seed = current_seed()
        except ConfigurationError as exc:
            sys.exit(f"error: {exc}")  # the message alone, as the nose2 plugin does
        if seed is not None:
            program.test = ordered_suite(program.test, seed)
        return run_tests(program)

    runTests.shuffles_tests = True
    unittest.TestProgram.runTests = runTests
