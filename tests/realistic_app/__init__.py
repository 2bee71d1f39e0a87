"""A small application schema as real projects write it, for tests of typed data.

``models.py`` declares it with SQLAlchemy 2.x ``DeclarativeBase`` and
``Mapped[]``; ``alembic.ini`` with ``migrations/`` (made like ``alembic init
-t async``, the revision from ``alembic revision --autogenerate``) builds the
same tables, so a test class can take its schema either way:
``metadata = Base.metadata`` or ``alembic_ini = ALEMBIC_INI``.
"""

from pathlib import Path

ALEMBIC_INI = str(Path(__file__).resolve().parent / "alembic.ini")
