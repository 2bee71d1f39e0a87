"""Table names and WHERE fragments are checked before any SQL is built."""

import unittest

from test_framework.errors import QueryGuardError
from test_framework.ssot.query_guards import check_where_clause, split_table_name


class TestSplitTableName(unittest.TestCase):
    def test_plain_and_qualified(self):
        self.assertEqual(split_table_name("users"), (None, "users"))
        self.assertEqual(split_table_name("public.users"), ("public", "users"))

    def test_hostile_names_rejected_with_the_name(self):
        for name in ("users; DROP TABLE users", "users--", "a.b.c", "", "1users",
                     "users where 1=1", '"users"', "users)"):
            with self.subTest(name=name), self.assertRaises(QueryGuardError) as caught:
                split_table_name(name)
            self.assertIn(repr(name), str(caught.exception))

    def test_non_string_rejected(self):
        with self.assertRaisesRegex(QueryGuardError, "is a int, not a string"):
            split_table_name(3)


class TestCheckWhereClause(unittest.TestCase):
    def test_ordinary_conditions_pass(self):
        for clause in ("email = :email", "is_active AND id > :n", "name = 'O''Brien'",
                       "(a = 1 OR b = 2) AND c IN (SELECT id FROM t)", "note = 'a;b -- c'"):
            with self.subTest(clause=clause):
                self.assertEqual(check_where_clause(clause), clause)

    def test_leading_where_keyword_is_tolerated(self):
        self.assertEqual(check_where_clause("WHERE id = :id"), "id = :id")

    def test_escapes_rejected(self):
        cases = {
            "1=1; DROP TABLE users": "ends the statement",
            "1=1 -- comment": "starts a comment",
            "1=1 /* x */": "starts a comment",
            "1=1) OR (1=1": "closes a parenthesis",
            "(1=1": "leaves a parenthesis open",
            "name = 'abc": "unterminated quote",
        }
        for clause, why in cases.items():
            with self.subTest(clause=clause), self.assertRaises(QueryGuardError) as caught:
                check_where_clause(clause)
            self.assertIn(why, str(caught.exception))
            self.assertIn("params", str(caught.exception))

    def test_non_string_rejected(self):
        with self.assertRaisesRegex(QueryGuardError, "not a string"):
            check_where_clause({"id": 1})
