"""Benchmark harness for test_framework: what one database test costs.

Run ``scripts/benchmark`` (or ``python -m benchmarks --help``).
It compares the library against empty-test floors, a naive engine-per-test
approach and Django's test cases on the same PostgreSQL, printing a table and
writing ``benchmark-results.json``.  See ``harness`` for the method.  Three
smaller tables time whole runs instead: start-up with and without a schema
template (``startup``), nose2 serial against ``-N 2`` (``parallel``), and a
3-model-set pytest suite against its create_all fixtures (``model_sets``).
"""
