"""Deterministic shards: every class in exactly one shard, the same on every machine."""

import os
import unittest

from test_framework.config import run_setting
from test_framework.errors import ConfigurationError
from test_framework.nose2_plugin import _only
from test_framework.sharding import Shard, current_shard, shard_of


def classes(count: int) -> list[type]:
    return [type(f"TestGenerated{n}", (unittest.TestCase,), {"test_x": lambda self: None,
                                                              "__module__": "tests.generated"})
            for n in range(count)]


class TestSharding(unittest.TestCase):
    def test_parse(self):
        self.assertIsNone(run_setting("shard", {}).value)
        self.assertEqual(run_setting("shard", {"TEST_FRAMEWORK_SHARD": " 2/4 "}).value, (2, 4))

    def test_current_shard_reads_the_environment_on_each_call(self):
        self.addCleanup(os.environ.pop, "TEST_FRAMEWORK_SHARD", None)
        os.environ.pop("TEST_FRAMEWORK_SHARD", None)
        self.assertIsNone(current_shard())
        os.environ["TEST_FRAMEWORK_SHARD"] = "3/5"
        self.assertEqual(current_shard(), Shard(3, 5))

    def test_bad_values_are_explained(self):
        for raw in ("0/4", "5/4", "two/four", "3", "1/0"):
            with self.subTest(raw=raw), self.assertRaises(ConfigurationError) as caught:
                run_setting("shard", {"TEST_FRAMEWORK_SHARD": raw})
            self.assertIn(f"TEST_FRAMEWORK_SHARD (environment) is {raw!r}", str(caught.exception))
            self.assertIn("e.g. 2/4", str(caught.exception))

    def test_every_class_in_exactly_one_shard_and_all_shards_used(self):
        generated = classes(200)
        for count in (2, 3, 7):
            shards = [Shard(index, count) for index in range(1, count + 1)]
            homes = [[s for s in shards if s.includes(c)] for c in generated]
            self.assertTrue(all(len(home) == 1 for home in homes))
            self.assertEqual({home[0].index for home in homes}, set(range(1, count + 1)))

    def test_same_answer_for_the_same_name(self):
        first, second = classes(1)[0], classes(1)[0]
        self.assertEqual(shard_of(first, 5), shard_of(second, 5))

    def test_nose2_filter_keeps_only_this_shard(self):
        generated = classes(20)
        suite = unittest.TestSuite([unittest.TestSuite([c("test_x")]) for c in generated])
        kept = [test for group in _only(suite, Shard(1, 2)) for test in group]
        self.assertEqual({type(t) for t in kept}, {c for c in generated if shard_of(c, 2) == 1})


class TestUnittestSkipsOtherShards(unittest.TestCase):
    def test_other_shards_classes_skip_before_any_database_work(self):
        from test_framework import SSotAsyncTestCase
        from tests.support import run_case

        class Sharded(SSotAsyncTestCase):
            async def test_x(self):
                pass

        mine = shard_of(Sharded, 2)
        other = 2 if mine == 1 else 1
        os.environ["TEST_FRAMEWORK_SHARD"] = f"{other}/2"
        try:
            result = run_case(Sharded)
        finally:
            del os.environ["TEST_FRAMEWORK_SHARD"]
        self.assertEqual(len(result.skipped), 1)
        self.assertIn(f"is in shard {mine}/2; this machine runs {other}/2", result.skipped[0][1])
