"""Write an Alembic project with many revisions, to time the walk against the Alembic CLI.

Every third revision creates a table; the two after it add a column and an
index to that table, so each kind of step (create, alter, index) and its
downgrade runs on SQLite and PostgreSQL alike. ``env.py`` and
``alembic.ini`` are the fixture's, so the CLI can run the project too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent

CREATE = '''
def upgrade():
    op.create_table("t{table}", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False),
                    sa.Column("created", sa.DateTime, server_default=sa.func.now()))


def downgrade():
    op.drop_table("t{table}")
'''
ADD_COLUMN = '''
def upgrade():
    op.add_column("t{table}", sa.Column("note", sa.String(200), nullable=True))


def downgrade():
    op.drop_column("t{table}", "note")
'''
ADD_INDEX = '''
def upgrade():
    op.create_index("ix_t{table}_name", "t{table}", ["name"])


def downgrade():
    op.drop_index("ix_t{table}_name", table_name="t{table}")
'''


def write_project(folder: Path, revisions: int, *, url: str = "set-by-the-framework") -> Path:
    """Write ``revisions`` revisions into ``folder``; return its alembic.ini."""
    (folder / "versions").mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "env.py", folder / "env.py")
    ini = folder / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s\n"
                   f"sqlalchemy.url = {url.replace('%', '%%')}\n", encoding="utf-8")
    for number in range(1, revisions + 1):
        body = (CREATE, ADD_COLUMN, ADD_INDEX)[(number - 1) % 3]
        parent = f'"{number - 1:04d}"' if number > 1 else "None"
        (folder / "versions" / f"{number:04d}_step.py").write_text(
            f'"""Generated step {number}."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f'revision = "{number:04d}"\ndown_revision = {parent}\n' +
            body.format(table=(number - 1) // 3), encoding="utf-8")
    return ini
