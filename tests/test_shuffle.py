"""The seeded order (``test_framework.shuffle``) and the search of ``test_framework.bisect``.

No database here: the order is a function of names, and delta debugging is a
function of a predicate. ``tests/functional/test_shuffle_bisect.py`` runs both
against real suites on each backend.
"""

import unittest

from test_framework.bisect import _dotted, bisect, ddmin, left_rows
from test_framework.bisect_child import RunReport
from test_framework.config import run_setting
from test_framework.errors import ConfigurationError
from test_framework.shuffle import leaves, ordered, ordered_suite

NAMES = [(module, cls, f"test_{n}") for module in ("m1", "m2", "m3")
         for cls in ("A", "B", "C") for n in range(4)]


def describe(name):
    return name


class TestOrder(unittest.TestCase):
    def test_modules_and_classes_stay_together(self):
        for seed in range(20):
            order = ordered(NAMES, seed, describe)
            turns = [key for i, key in enumerate((m, c) for m, c, _ in order)
                     if i == 0 or (order[i - 1][0], order[i - 1][1]) != key]
            self.assertEqual(len(turns), 9, f"seed {seed} split a class: {order}")
            modules = [m for i, (m, _, _) in enumerate(order) if i == 0 or order[i - 1][0] != m]
            self.assertEqual(len(modules), 3, f"seed {seed} split a module")

    def test_a_seed_gives_one_order_and_seeds_differ(self):
        self.assertEqual(ordered(NAMES, 7, describe), ordered(list(reversed(NAMES)), 7, describe))
        orders = {tuple(ordered(NAMES, seed, describe)) for seed in range(20)}
        self.assertEqual(len(orders), 20)

    def test_a_narrower_selection_keeps_the_relative_order(self):
        whole = ordered(NAMES, 3, describe)
        part = [name for name in NAMES if name[1] != "B" and name[2] != "test_0"]
        self.assertEqual(ordered(part, 3, describe), [name for name in whole if name in part])

    def test_a_unittest_suite_is_flattened_in_the_seeds_order(self):
        class First(unittest.TestCase):
            def test_x(self): pass
            def test_y(self): pass

        class Second(unittest.TestCase):
            def test_z(self): pass

        loader = unittest.TestLoader()
        nested = unittest.TestSuite([loader.loadTestsFromTestCase(First),
                                     loader.loadTestsFromTestCase(Second)])
        flat = ordered_suite(nested, 5)
        self.assertTrue(all(not isinstance(test, unittest.TestSuite) for test in flat))
        self.assertEqual(sorted(test.id() for test in flat),
                         sorted(test.id() for test in leaves(nested)))
        self.assertEqual([test.id() for test in flat],
                         [test.id() for test in ordered_suite(nested, 5)])


class TestSeedSetting(unittest.TestCase):
    def test_values(self):
        cases = {"": None, "off": None, "1234": 1234, " 0 ": 0, "RANDOM": "random"}
        for raw, value in cases.items():
            with self.subTest(raw=raw):
                self.assertEqual(run_setting("shuffle", {"TEST_FRAMEWORK_SHUFFLE": raw}).value,
                                 value)

    def test_a_bad_value_names_itself_and_its_source(self):
        for raw in ("-3", "1.5", "yes"):
            with self.subTest(raw=raw), self.assertRaises(ConfigurationError) as caught:
                run_setting("shuffle", {"TEST_FRAMEWORK_SHUFFLE": raw})
            self.assertIn(f"TEST_FRAMEWORK_SHUFFLE (environment) is {raw!r}, not a seed",
                          str(caught.exception))


def runner(polluters: set[str], runs: list[list[str]], *, alone_fails: bool = False):
    """A run in which the target (last id) fails when every polluter ran before it."""
    def run(ids: list[str]) -> RunReport:
        runs.append(ids)
        target, earlier = ids[-1], set(ids[:-1])
        failed = alone_fails or polluters <= earlier
        return RunReport(ran=ids, failures={target: "AssertionError"} if failed else {},
                         leftovers=[f"{p} left rows behind: users +1. Only rows" for p in
                                    sorted(polluters & earlier)])
    return run


class TestBisectSearch(unittest.TestCase):
    CANDIDATES = [f"t{n:02d}" for n in range(40)]

    def test_one_polluter_among_forty_in_few_runs(self):
        runs = []
        outcome = bisect("target", self.CANDIDATES, runner({"t27"}, runs))
        self.assertEqual(outcome.polluters, ["t27"])
        self.assertEqual(outcome.leftovers, {"t27": "users +1"})
        self.assertEqual(outcome.runs, len(runs))
        self.assertLessEqual(outcome.runs, 2 + 2 * 6)  # alone, all, then halving
        self.assertEqual(runs[0], ["target"])

    def test_two_polluters_needed_together_are_both_named_in_order(self):
        outcome = bisect("target", self.CANDIDATES, runner({"t31", "t04"}, []))
        self.assertEqual(outcome.polluters, ["t04", "t31"])

    def test_a_target_that_fails_alone_stops_after_one_run(self):
        outcome = bisect("target", self.CANDIDATES, runner(set(), [], alone_fails=True))
        self.assertEqual((outcome.polluters, outcome.runs), ([], 1))
        self.assertIn("fails alone", outcome.reason)

    def test_a_target_that_does_not_run_is_not_called_passing(self):
        outcome = bisect("target", self.CANDIDATES,
                         lambda ids: RunReport(output="AttributeError: no test_nope"))
        self.assertEqual((outcome.polluters, outcome.runs), ([], 1))
        self.assertEqual(outcome.reason, "unittest did not run it:\nAttributeError: no test_nope")

    def test_ddmin_result_is_one_minimal(self):
        needed = {"t03", "t17", "t18"}
        found = ddmin(self.CANDIDATES, lambda subset: needed <= set(subset))
        self.assertEqual(found, sorted(needed))


class TestOrderFiles(unittest.TestCase):
    def test_pytest_ids_become_unittest_ids(self):
        self.assertEqual(_dotted("tests/app/test_x.py::Orders::test_total"),
                         "tests.app.test_x.Orders.test_total")
        self.assertEqual(_dotted("tests.app.test_x.Orders.test_total"),
                         "tests.app.test_x.Orders.test_total")

    def test_leftover_messages_are_matched_to_their_test(self):
        messages = ["a.B.test_x left rows behind: users +1, threads +2. Only rows made",
                    "a.B.test_y left rows behind: users +3. Only rows made"]
        self.assertEqual(left_rows(messages, ["a.B.test_x"]),
                         {"a.B.test_x": "users +1, threads +2"})
