"""Tests of the example chat app, written with test_framework.

Run from ``examples/`` with any of::

    python -m unittest
    python -m nose2
    python -m pytest
    python -m coverage run -m unittest

This folder is a package and ``examples/`` is the top-level directory, so
every runner imports the tests as ``tests.test_*`` and the app as ``app``.
"""
