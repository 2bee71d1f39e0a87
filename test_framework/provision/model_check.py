"""Check that a schema built from migrations (or a SQL file) matches the models.

A class may give ``metadata`` beside ``alembic_ini`` or ``schema_sql``: the
models then supply column types (factories, typed parameters), and with
``check_models = True`` the built template is compared with them by
Alembic's own comparison (types and server defaults included), so a model
column that no migration creates fails the run with the differences listed,
once per template rather than once per test.
"""

from __future__ import annotations

from sqlalchemy import MetaData


def model_differences(connection, metadata: MetaData) -> list[str]:
    """Alembic's autogenerate comparison of the database with ``metadata``, one line each."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    context = MigrationContext.configure(connection, opts={
        "compare_type": True, "compare_server_default": True,
        "include_name": lambda name, kind, _: not (kind == "table" and name == "alembic_version"),
    })
    return [_describe(difference) for difference in compare_metadata(context, metadata)]


def _describe(difference) -> str:
    """Render one difference (a tuple, or a list of column modifications) readably."""
    if isinstance(difference, list):
        return "; ".join(_describe(item) for item in difference)
    action, *details = difference
    shown = [getattr(item, "name", None) or str(item) for item in details
             if item is not None and not isinstance(item, dict)]
    return f"{action}: {' '.join(shown)}"
