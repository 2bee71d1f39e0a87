"""Every ``.. code-block:: python`` in README.rst runs, so the examples cannot drift.

Each block is compiled with README.rst as its file name and its real line
numbers, executed as a fresh module, and its test classes run through a real
suite on this pass's backend. Blocks marked ``:class: migrating-from`` show
code for other frameworks (Django, pytest fixtures); those are only compiled.
"""

import re
import textwrap
import unittest
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import backend_name, problems, run_case

README = Path(__file__).resolve().parents[1] / "README.rst"
DIRECTIVE = re.compile(r"^(?P<prefix>[ *\-]*)\.\. code-block:: python\s*$")
NOT_RUN = "migrating-from"


@dataclass
class Block:
    """One python code block: where it starts in README.rst and its text."""

    line: int
    source: str
    classes: set = field(default_factory=set)

    def compiled(self):
        padded = "\n" * (self.line - 1) + self.source
        return compile(padded, str(README), "exec")


def python_blocks(text: str) -> list[Block]:
    """Return the python code blocks of an RST text, also those nested in tables."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        match = DIRECTIVE.match(line)
        if not match:
            continue
        column = len(match["prefix"])
        position, classes = index + 1, set()
        while position < len(lines) and lines[position].strip().startswith(":"):
            name, _, value = lines[position].strip()[1:].partition(":")
            if name == "class":
                classes.update(value.split())
            position += 1
        body_start = position
        while position < len(lines) and (not lines[position].strip()
                                         or _indent(lines[position]) > column):
            position += 1
        body = lines[body_start:position]
        first = next(number for number, text in enumerate(body) if text.strip())
        source = textwrap.dedent("\n".join(body[first:])).rstrip() + "\n"
        blocks.append(Block(body_start + first + 1, source, classes))
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def test_classes(block: Block) -> list[type]:
    """Execute a block as a module; return the TestCase classes it defines."""
    module_name = f"readme_line_{block.line}"
    namespace = {"__name__": module_name}
    exec(block.compiled(), namespace)
    return [value for value in namespace.values()
            if isinstance(value, type) and issubclass(value, unittest.TestCase)
            and value.__module__ == module_name]


class TestReadmeExamples(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.blocks = python_blocks(README.read_text(encoding="utf-8"))

    def test_every_example_runs_and_passes(self):
        runnable = [block for block in self.blocks if NOT_RUN not in block.classes]
        self.assertGreaterEqual(len(runnable), 8, "README examples were not found")
        for block in runnable:
            with self.subTest(readme_line=block.line):
                classes = test_classes(block)
                self.assertTrue(classes, f"README.rst:{block.line} defines no test class")
                for test_class in classes:
                    result = run_case(test_class)
                    self.assertTrue(result.wasSuccessful(),
                                    f"README.rst:{block.line}:\n{problems(result)}")
                    self.assertGreater(result.testsRun, 0)
                    for test, reason in result.skipped:
                        # Only examples for the other backend may skip on this pass.
                        self.assertIn(f"runs on {backend_name()} (", reason, test.id())

    def test_examples_for_other_frameworks_compile(self):
        shown = [block for block in self.blocks if NOT_RUN in block.classes]
        self.assertEqual(len(shown), 3, "one 'before' block per migration path")
        for block in shown:
            with self.subTest(readme_line=block.line):
                block.compiled()


class TestBlockParser(unittest.TestCase):
    def test_top_level_and_table_cells_with_options(self):
        text = textwrap.dedent("""\
            Intro::

                not python

            .. code-block:: python

                x = 1

                y = 2

            .. list-table::

               * - .. code-block:: python
                      :class: migrating-from

                      before = 1
                 - .. code-block:: python

                      after = 2
            """)
        blocks = python_blocks(text)
        self.assertEqual([(b.line, b.source, b.classes) for b in blocks], [
            (7, "x = 1\n\ny = 2\n", set()),
            (16, "before = 1\n", {"migrating-from"}),
            (19, "after = 2\n", set())])
