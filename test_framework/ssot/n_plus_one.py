"""The N+1 detector: how often each statement shape ran, and where it first came from.

A *call site* (``call_sites.py``) is the innermost frame of the user's code
that led to a statement. The stack is walked only the first time a counter
sees a shape, so a test that repeats a statement pays for one walk, not one
per statement.
"""

from __future__ import annotations

import unittest
import warnings
from dataclasses import dataclass

from test_framework.config import Setting
from test_framework.ssot.call_sites import CallSite, call_sites, shown_path

__all__ = ["NPlusOneWarning", "ShapeCounter", "call_sites", "describe_repeats",
           "report_repeats", "shown_path"]
__unittest = True  # an N+1 failure points at the test, not at this module


@dataclass(frozen=True)
class Repeat:
    """A shape that ran more often than allowed, with the sites of its first run."""

    shape: str
    count: int
    sites: tuple[CallSite, ...]

    def describe(self) -> str:
        first = ("\n     first from " + "\n       called from ".join(map(str, self.sites))
                 if self.sites else "\n     (no frame of your code was on the stack)")
        return f"  {self.count} x {self.shape}{first}"


class ShapeCounter:
    """How often each shape ran, and the call sites of its first run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.sites: dict[str, tuple[CallSite, ...]] = {}

    def add(self, shape: str, sites: tuple[CallSite, ...] | None) -> tuple[CallSite, ...] | None:
        """Count ``shape``; return the call sites, found now if this is its first run."""
        count = self.counts.get(shape)
        if count is None:
            if sites is None:
                sites = call_sites()
            self.sites[shape] = sites
            self.counts[shape] = 1
        else:
            self.counts[shape] = count + 1
        return sites

    def repeats(self, threshold: int) -> list[Repeat]:
        """The shapes that ran more than ``threshold`` times, most frequent first."""
        over = [Repeat(shape, count, self.sites[shape])
                for shape, count in self.counts.items() if count > threshold]
        return sorted(over, key=lambda repeat: -repeat.count)


class NPlusOneWarning(UserWarning):
    """One statement shape ran more than ``n_plus_one_threshold`` times in a test."""


def describe_repeats(repeats: list[Repeat], *, where: str, threshold: Setting,
                     intended: str) -> str:
    """The N+1 report: each shape, its count, its first call site, and what to do."""
    shapes = "shape" if len(repeats) == 1 else "shapes"
    listed = "\n".join(repeat.describe() for repeat in repeats)
    return (f"N+1 queries in {where}: {len(repeats)} statement {shapes} ran more than "
            f"{threshold.value} times (the threshold, from {threshold.source}):\n{listed}\n"
            "Load the related rows with the query that fetched the parents (selectinload "
            f"or joinedload), or fetch the whole set in one query. {intended}")


def report_repeats(test: unittest.TestCase, counter: ShapeCounter, *, policy: Setting,
                   threshold: Setting) -> None:
    """At the end of a test: warn, or fail it, for each reading shape that ran too often.

    The warning is issued at the first call site, so every runner prints the
    line of the user's code that sent the statement, not a line of ours.
    """
    repeats = counter.repeats(threshold.value)
    if not repeats:
        return
    message = describe_repeats(
        repeats, where=test.id(), threshold=threshold,
        intended=f"If the repetition is intended, raise n_plus_one_threshold, or set "
                 f"n_plus_one = 'ignore' on the class (n_plus_one is {policy.value!r}, "
                 f"from {policy.source})")
    if policy.value == "error":
        test.fail(message)
    sites = repeats[0].sites
    if sites:
        warnings.warn_explicit(message, NPlusOneWarning, sites[0].filename, sites[0].lineno)
    else:
        warnings.warn(message, NPlusOneWarning, stacklevel=2)
