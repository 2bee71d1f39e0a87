"""Passwords never leak into output; Ctrl-C drops databases without a traceback storm."""

import glob
import os
import signal
import subprocess
import sys
import unittest

from tests.functional.example_runs import (ROOT, child_environment, orphaned_databases,
                                           run_suite, server_test_databases)
from test_framework.backends.sqlite import PRIVATE_PREFIX
from tests.support import backend_name


class TestPasswordsNeverShown(unittest.TestCase):
    @unittest.skipUnless(backend_name() == "postgresql", "needs a server that checks passwords")
    def test_password_absent_from_every_line_at_debug(self):
        url = os.environ["TEST_DATABASE_URL"].replace("postgres@", "postgres:pw-s3cr3t-value@")
        in_query = os.environ["TEST_DATABASE_URL"] + "?password=pw-s3cr3t-value"
        output = ""
        for case, database_url, flags in (  # each case stops its own run
                ("UsesPassword", url, ()), ("UsesPassword", in_query, ()),
                ("BadPasswordServer", url, ("--locals",))):
            run = run_suite("-m", "unittest", "-v", *flags,
                            f"tests.functional.scenarios.with_password.{case}",
                            cwd=ROOT, env_updates={"TEST_DATABASE_URL": database_url,
                                                   "TEST_FRAMEWORK_LOG_LEVEL": "DEBUG"})
            self.assertEqual(run.leftover_databases, [])
            output += run.stdout + run.stderr
        self.assertIn("test_context_and_work", output)
        self.assertIn("INSERT INTO users", output, "SQL was logged")
        self.assertIn("postgres:***@", output, "the masked URL is shown")
        self.assertNotIn("pw-s3cr3t-value", output)
        self.assertNotIn("hunter2-unreachable", output)
        self.assertIn("postgresql://app:***@db/app", output, "a parameter is masked, not dropped")
        self.assertNotIn("param-s3cr3t", output)


class TestInterrupt(unittest.TestCase):
    def test_ctrl_c_drops_the_database_and_prints_one_traceback_at_most(self):
        before = server_test_databases(os.environ.get("TEST_DATABASE_URL") or None)
        env = child_environment(os.environ.get("TMPDIR", "/tmp"), {}, ())
        process = subprocess.Popen(
            [sys.executable, "-m", "unittest", "tests.functional.scenarios.interrupted"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = process.stdout.readline()
            self.assertTrue(line.startswith("READY"), line)
            database = line.split()[1]
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        self.assertNotEqual(process.returncode, 0)
        self.assertLessEqual(stderr.count("Traceback"), 1, stderr)
        url = os.environ.get("TEST_DATABASE_URL") or None
        new = {name for name in server_test_databases(url) - before
               if f"_p{process.pid}_" in name}  # not another suite's, on a shared server
        self.assertEqual(new & orphaned_databases(url), set(), "databases dropped after Ctrl-C")
        if backend_name() == "sqlite":
            self.assertFalse(os.path.exists(database.split("///", 1)[1]), database)


    def test_ctrl_c_just_after_the_database_is_made_still_drops_it(self):
        """Between CREATE DATABASE (on SQLite, the file's copy) and the run's record of
        it, a Ctrl-C used to leave the database for the next run's reaper."""
        url = os.environ.get("TEST_DATABASE_URL") or None
        before = server_test_databases(url)
        env = child_environment(os.environ.get("TMPDIR", "/tmp"), {}, ())
        process = subprocess.Popen(
            [sys.executable, "-m", "unittest", "tests.functional.scenarios.interrupted_creating"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        self.assertIn("CREATED", stdout, stderr)
        self.assertIn("KeyboardInterrupt", stderr)
        self.assertNotEqual(process.returncode, 0)
        if backend_name() == "postgresql":
            left = {name for name in server_test_databases(url) - before
                    if f"_p{process.pid}_" in name}
        else:
            left = set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                              f"{PRIVATE_PREFIX}{process.pid}_*", "*.sqlite3")))
        self.assertEqual(left, set(), stderr)


class TestUnreachableUnderPytest(unittest.TestCase):
    def test_pytest_session_stops_after_the_first_error(self):
        run = run_suite("-m", "pytest", "-q", "tests/functional/scenarios/unreachable.py",
                        cwd=ROOT)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("1 failed", run.stdout, run.describe())
        self.assertIn("test database unavailable", run.stdout + run.stderr, run.describe())
