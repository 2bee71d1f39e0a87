"""Order pollution end to end: ``TEST_FRAMEWORK_SHUFFLE`` under each runner, and ``bisect``.

Every case runs ``scenarios/polluter.py`` (twelve tests in four classes, on
the parent's backend) in a subprocess with a timeout. The order is read from
each runner's verbose output. ``Reads.test_b_sees_no_users`` passes alone and
fails after ``Pollutes.test_a_inserts_untracked_row``, which commits a row
with raw SQL; bisect has to name that one test among nine.
"""

import re
import tempfile
import unittest
from pathlib import Path

from tests.functional.example_runs import ROOT, run_suite

MODULE = "tests.functional.scenarios.polluter"
PATH = "tests/functional/scenarios/polluter.py"
TARGET = f"{MODULE}.Reads.test_b_sees_no_users"
POLLUTER = f"{MODULE}.Pollutes.test_a_inserts_untracked_row"
NOSE2_CONFIG = "[unittest]\nplugins = test_framework.nose2_plugin\n\n" \
               "[test-framework]\nalways-on = True\n"
RUNNERS = {
    "unittest": ("-m", "unittest", "-v", MODULE),
    "nose2": ("-m", "nose2", "-v", MODULE),
    "pytest": ("-m", "pytest", "-v", "-p", "no:cacheprovider", PATH),
}
UNITTEST_LINE = re.compile(r"^\w+ \(([\w.]+)\) \.\.\. ", re.MULTILINE)
PYTEST_LINE = re.compile(r"^(\S+\.py)::(\w+)::(\w+) (?:PASSED|FAILED|ERROR)", re.MULTILINE)
SEED_LINE = re.compile(r"test_framework: shuffled with seed (\d+) "
                       r"\(TEST_FRAMEWORK_SHUFFLE=\1 repeats this order\)")


def run_shuffled(runner: str, shuffle: str):
    """Run the scenario under ``runner``; nose2 from a folder whose unittest.cfg loads the
    plugin, as users configure it."""
    with tempfile.TemporaryDirectory(prefix="shuffle_nose2_") as folder:
        Path(folder, "unittest.cfg").write_text(NOSE2_CONFIG)
        return run_suite(*RUNNERS[runner], cwd=Path(folder) if runner == "nose2" else ROOT,
                         env_updates={"TEST_FRAMEWORK_SHUFFLE": shuffle})


def order_of(runner: str, run) -> list[str]:
    """The tests as run, each as ``Class.test``."""
    if runner == "pytest":
        return [f"{cls}.{test}" for _, cls, test in PYTEST_LINE.findall(run.stdout)]
    return [test_id.removeprefix(f"{MODULE}.") for test_id in UNITTEST_LINE.findall(run.stderr)]


def classes_in_turn(order: list[str]) -> list[str]:
    """The class of each stretch of consecutive tests; a class twice means it was split."""
    turns = []
    for test in order:
        test_class = test.partition(".")[0]
        if not turns or turns[-1] != test_class:
            turns.append(test_class)
    return turns


class TestShuffle(unittest.TestCase):
    def test_a_seed_repeats_its_order_and_another_seed_changes_it_under_every_runner(self):
        orders = {}
        for runner in RUNNERS:
            with self.subTest(runner=runner):
                first, again, other = (run_shuffled(runner, seed) for seed in ("1", "1", "2"))
                order = order_of(runner, first)
                self.assertEqual(len(order), 12, first.describe())
                self.assertEqual(order_of(runner, again), order, again.describe())
                self.assertNotEqual(order_of(runner, other), order, other.describe())
                self.assertEqual(sorted(order_of(runner, other)), sorted(order))
                for run in (first, other):
                    self.assertEqual(len(classes_in_turn(order_of(runner, run))), 4,
                                     "a class's tests were split" + run.describe())
                    self.assertEqual((run.leftover_files, run.leftover_databases), ([], []))
                orders[runner] = order
        self.assertNotEqual(orders["unittest"], sorted(orders["unittest"]), "not shuffled")
        self.assertEqual(orders["nose2"], orders["unittest"], "one seed, one order")
        self.assertEqual(orders["pytest"], orders["unittest"], "one seed, one order")

    def test_random_prints_a_seed_that_repeats_the_order(self):
        for runner in RUNNERS:
            with self.subTest(runner=runner):
                picked = run_shuffled(runner, "random")
                seeds = SEED_LINE.findall(picked.stdout + picked.stderr)
                self.assertEqual(len(seeds), 1, picked.describe())
                repeated = run_shuffled(runner, seeds[0])
                self.assertNotIn("shuffled with seed", repeated.stdout + repeated.stderr)
                self.assertEqual(order_of(runner, repeated), order_of(runner, picked),
                                 picked.describe() + repeated.describe())
                self.assertEqual(len(order_of(runner, picked)), 12, picked.describe())

    def test_a_bad_seed_is_named_with_its_source(self):
        message = ("TEST_FRAMEWORK_SHUFFLE (environment) is 'often', not a seed; use a "
                   "whole number")
        for runner in RUNNERS:
            with self.subTest(runner=runner):
                run = run_shuffled(runner, "often")
                self.assertIn(message, run.stdout + run.stderr, run.describe())
                self.assertNotEqual(run.returncode, 0)
                self.assertNotIn("Traceback", run.stdout + run.stderr, run.describe())


class TestBisect(unittest.TestCase):
    def bisect(self, *args: str):
        return run_suite("-m", "test_framework", "bisect", *args, cwd=ROOT)

    def assert_found_the_polluter(self, run) -> None:
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertIn(f"{TARGET} passes alone and fails after this test:\n"
                      f"    {POLLUTER}  (left rows behind: users +1)\n", run.stdout,
                      run.describe())
        named = re.findall(rf"^    ({MODULE}\.\S+)", run.stdout, re.MULTILINE)
        self.assertEqual(named, [POLLUTER], "innocent tests named" + run.describe())
        runs = int(re.search(r"^(\d+) run\(s\)$", run.stdout, re.MULTILINE).group(1))
        progress = re.findall(r"^bisect: run (\d+): ", run.stderr, re.MULTILINE)
        self.assertEqual(list(map(int, progress)), list(range(1, runs + 1)), run.describe())
        self.assertEqual((run.leftover_files, run.leftover_databases), ([], []))

    def test_names_the_one_polluter_among_the_tests_before_the_target(self):
        run = self.bisect(TARGET, "--timeout", "60", "--", MODULE)
        self.assert_found_the_polluter(run)
        self.assertIn("the target after 9 of 9 earlier test(s)", run.stderr, run.describe())

    def test_rebuilds_a_shuffled_order_from_its_seed(self):
        shuffled = run_shuffled("unittest", "2")
        order = [f"{MODULE}.{test}" for test in order_of("unittest", shuffled)]
        earlier = order.index(TARGET)
        self.assertIn(POLLUTER, order[:earlier], "seed 2 must put the polluter first")
        run = self.bisect(TARGET, "--seed", "2", "--timeout", "60", "--", MODULE)
        self.assert_found_the_polluter(run)
        self.assertIn(f"the target after {earlier} of {earlier} earlier", run.stderr)

    def test_reads_an_order_file_of_pytest_ids(self):
        with tempfile.TemporaryDirectory() as folder:
            order = Path(folder, "order.txt")
            order.write_text(f"# from a pytest -v run\n{PATH}::ChecksA::test_1\n"
                             f"{PATH}::Pollutes::test_a_inserts_untracked_row\n"
                             f"{PATH}::Pollutes::test_d_reads\n{PATH}::Reads::test_b_sees_no_users\n")
            run = self.bisect(TARGET, "--order", str(order), "--timeout", "60")
        self.assert_found_the_polluter(run)

    def test_stops_when_the_order_does_not_make_the_target_fail(self):
        with tempfile.TemporaryDirectory() as folder:
            order = Path(folder, "order.txt")
            order.write_text(f"{MODULE}.Reads.test_f_counts_messages\n"
                             f"{MODULE}.Reads.test_e_counts_threads\n{TARGET}\n")
            run = self.bisect(TARGET, "--order", str(order), "--timeout", "60")
        self.assertEqual(run.returncode, 1, run.describe())
        self.assertIn("it passes after the 2 earlier test(s) too", run.stdout, run.describe())
        self.assertIn("2 run(s)", run.stdout, run.describe())

    def test_an_unknown_target_is_named(self):
        run = self.bisect(f"{MODULE}.Reads.test_nope", "--", MODULE)
        self.assertEqual(run.returncode, 2, run.describe())
        self.assertIn(f"'{MODULE}.Reads.test_nope' is not among the 12 tests of "
                      f"python -m unittest {MODULE}", run.stderr)
