"""Table names and WHERE conditions are checked (and conditions rebuilt) before any SQL runs."""

import unittest

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

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


DIALECTS = ("sqlite", "postgresql")


def checked(clause, dialect="postgresql"):
    return check_where_clause(clause, dialect=dialect)


class TestCheckWhereClause(unittest.TestCase):
    def test_ordinary_conditions_are_regenerated_with_quoted_names(self):
        cases = {
            "email = :email": '"email" = :email',
            "age > 3 AND name LIKE 'a%'": '"age" > 3 AND "name" LIKE \'a%\'',
            "lower(email) IN (:a, :b)": 'LOWER("email") IN (:a, :b)',
            "created_at IS NOT NULL": '"created_at" IS NOT NULL',
            "CAST(x AS TEXT) = '1'": 'CAST("x" AS TEXT) = \'1\'',
            "status <> 'x' OR status IS NULL": '"status" <> \'x\' OR "status" IS NULL',
            "name = 'O''Brien'": '"name" = \'O\'\'Brien\'',
            "users.id BETWEEN :lo AND :hi": '"users"."id" BETWEEN :lo AND :hi',
            "CASE WHEN a THEN 1 ELSE 0 END = 1": 'CASE WHEN "a" THEN 1 ELSE 0 END = 1',
            "extract(year from created_at) = 2020": 'EXTRACT(YEAR FROM "created_at") = 2020',
            "NOT (a = 1 OR b IS NULL)": 'NOT ("a" = 1 OR "b" IS NULL)',
            "Email = TRUE": '"email" = TRUE',  # folded as PostgreSQL folds it, then quoted
            'users."Email" = 1': '"users"."Email" = 1',
            "Änderung = 1": '"Änderung" = 1',  # PostgreSQL folds ASCII letters only
            "user = 'x'": '"user" = \'x\'',  # quoted: a column, not current_user
        }
        for clause, expected in cases.items():
            with self.subTest(clause=clause):
                self.assertEqual(checked(clause), expected)

    def test_every_ordinary_condition_passes_on_both_dialects(self):
        for dialect in DIALECTS:
            for clause in ("email = :email", "is_active AND id > :n", "name ILIKE 'a%'",
                           "coalesce(full_name, '') = upper(:n)", "abs(-id) % 2 = 0",
                           "trim(email) || 'x' <> :e", "round(id) = 1.5e1", "x IS NOT TRUE",
                           "length(email) NOT IN (1, 2)", "created_at < CURRENT_TIMESTAMP",
                           "name NOT LIKE 'a!%' ESCAPE '!'"):
                with self.subTest(dialect=dialect, clause=clause):
                    checked(clause, dialect)

    def test_leading_where_keyword_is_tolerated(self):
        self.assertEqual(checked("WHERE id = :id"), '"id" = :id')
        self.assertEqual(checked("  where\n id = :id", "sqlite"), "id = :id")

    def test_postgresql_writes_a_literal_with_a_backslash_as_an_escape_string(self):
        # '\' means one thing or another by standard_conforming_strings; E'\\' does not.
        self.assertEqual(checked("name LIKE 'a\\%' OR name = 'x\\' OR name = 'y'"),
                         '"name" LIKE e\'a\\\\%\' OR "name" = e\'x\\\\\' OR "name" = \'y\'')
        self.assertEqual(checked("name = 'x\\'", "sqlite"), "name = 'x\\'")

    def test_sqlite_keeps_plain_names_bare_so_a_typo_is_not_read_as_a_string(self):
        self.assertEqual(checked('Email = :e AND users."Odd name" = 1 AND user = 2', "sqlite"),
                         'Email = :e AND users."Odd name" = 1 AND user = 2')
        self.assertEqual(checked("x = $$abc$$", "sqlite"), 'x = "$$abc$$"')  # not a $parameter

    def test_colons_in_literals_and_names_do_not_become_bound_parameters(self):
        for dialect, sqlalchemy_dialect, literal in (
                ("sqlite", sqlite.dialect(), "'a:b ::c \\:d'"),
                ("postgresql", postgresql.dialect(), "e'a:b ::c \\\\:d'")):
            with self.subTest(dialect=dialect):
                compiled = text(checked("note = 'a:b ::c \\:d' AND \"x:y\" = :v",
                                        dialect)).compile(dialect=sqlalchemy_dialect)
                self.assertEqual(list(compiled.params), ["v"])
                self.assertIn(literal, str(compiled))
                self.assertIn('"x:y"', str(compiled))

    def test_refused_nodes_are_named(self):
        cases = {
            "pg_terminate_backend(:pid)": "function pg_terminate_backend is not allowed",
            "set_config('statement_timeout', '0', false) = '0'": "function set_config",
            "lo_import('/etc/passwd') > 0": "function lo_import",
            "CAST(pg_read_file('/etc/passwd') AS int) = 1": "function pg_read_file",
            "email = current_setting('data_directory')": "function current_setting",
            "PG_SLEEP(1) IS NULL": "function PG_SLEEP",
            '"pg_sleep"(1) IS NULL': "function pg_sleep",
            "random() > 0.5": "function random",
            "current_user = 'postgres'": "function current_user",
            "id IN (SELECT id FROM users)": "a subquery ((SELECT id FROM users)) is not allowed",
            "EXISTS (SELECT 1)": "a subquery",
            "id = 1 UNION SELECT 1": "does not parse as one condition (Invalid expression / "
                                     "Unexpected token at 'UNION')",
            "email = $$x$$": "dollar-quoted string",
            "email = E'x'": "E'...' string",
            "CAST(x AS regclass) = 1": "objectidentifier",
            "id = ?": "parameter '?'",
            "id = 1 x": "Unexpected token at 'x'",
            "users.* IS NULL": "column users.* is not allowed",
            "users.'email' = 'x'": "column users.'email' is not allowed",
            "1=1; DROP TABLE users": "';' ends the statement",
            "id = 1;": "';' ends the statement",
            "1=1 -- comment": "a comment is not allowed",
            "1=1 /* x */": "a comment is not allowed",
            "1=1) OR (1=1": "does not parse as one condition",
            "(1=1": "does not parse as one condition",
            "name = 'abc": "does not parse as one condition",
            "email = $$'$$) UNION ALL SELECT 42 --'": "a comment is not allowed",
            "email = E'\\'') UNION ALL SELECT 42 --'": "a comment is not allowed",
            "email = $$'$$) UNION ALL SELECT 42": "does not parse as one condition",
            "DROP TABLE users": "Unexpected token at 'DROP'",
            "DELETE FROM users": "does not parse as one condition",
            "-- only a comment": "the condition is empty",
            "   ": "the condition is empty",
        }
        for clause, named in cases.items():
            with self.subTest(clause=clause), self.assertRaises(QueryGuardError) as caught:
                checked(clause)
            message = str(caught.exception)
            self.assertIn(named, message)
            self.assertIn(repr(clause), message)
            self.assertIn("count_records('users', 'email = :email', {'email': email})", message)

    def test_attacks_are_refused_in_the_sqlite_dialect_too(self):
        for clause in ("pg_terminate_backend(:pid)", "load_extension('x') IS NULL",
                       "id IN (SELECT id FROM users)", "1=1; DROP TABLE users",
                       "email = $$'$$) UNION ALL SELECT 42 --'", "randomblob(9) IS NULL",
                       "email = E'\\'') UNION ALL SELECT 42 --'", "1=1 -- x"):
            with self.subTest(clause=clause), self.assertRaises(QueryGuardError):
                checked(clause, "sqlite")

    def test_unknown_dialect_refused(self):
        with self.assertRaisesRegex(QueryGuardError, "dialect 'nosuchdb'"):
            check_where_clause("id = 1", dialect="nosuchdb")

    def test_non_string_rejected(self):
        with self.assertRaisesRegex(QueryGuardError, "is a dict, not a string"):
            checked({"id": 1})
