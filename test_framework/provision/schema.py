"""Where a test class's schema comes from, and a fingerprint of it.

Three sources: SQLAlchemy ``metadata`` (the default), a SQL file
(``schema_sql``), or an Alembic migration head (``alembic_ini``, needs the
``alembic`` extra). The fingerprint names the template database, so a
changed schema gets a new template and an unchanged one is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import weakref
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, MetaData, TypeDecorator
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable

from test_framework import sample_schema
from test_framework.config import ClassSettings, project_root
from test_framework.errors import ConfigurationError, SchemaBuildError


class SchemaSource:
    """Builds a schema into an empty database; ``fingerprint`` changes when it would differ.

    A template is named by its ``project`` (a hash of the project's folder)
    and the fingerprint of its whole content, never by file paths or table
    names alone: two model sets that share table names get two templates.
    """

    description: str
    metadata: MetaData | None = None  # beside a file source: the models, for types and checks
    check_models: bool = False
    project: str = ""

    def fingerprint(self, dialect) -> str:
        raise NotImplementedError

    async def build(self, engine: AsyncEngine, backend) -> None:
        raise NotImplementedError


def _with_models(source: "SchemaSource", metadata: MetaData | None,
                 check_models: bool) -> "SchemaSource":
    source.metadata, source.check_models = metadata, check_models and metadata is not None
    return source


def _project_of(project: str | None) -> str:
    """A schema made outside a test class belongs to the working directory's project."""
    return project or _digest(str(project_root(Path.cwd())))


class MetadataSchema(SchemaSource):
    # Per MetaData object (weakly: ``id()`` is reused once an object is freed), then per
    # dialect and shape (a table added since is a new entry).
    _fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, metadata: MetaData, *, project: str | None = None) -> None:
        self.metadata = metadata
        self.project = _project_of(project)
        self.description = f"metadata with {len(metadata.tables)} tables"

    def fingerprint(self, dialect) -> str:
        """Hash the DDL the dialect would emit, so any column or index change shows.

        Cached per MetaData object, dialect and shape (every class of a suite
        asks): models imported after a first class ran add tables to the same
        MetaData, and a model set made in a function may be freed and another
        made at its address.
        """
        cached = self._fingerprints.setdefault(self.metadata, {})
        key = (dialect.name, _shape(self.metadata))
        if key not in cached:
            cached[key] = self._ddl_digest(dialect)
        return cached[key]

    def _ddl_digest(self, dialect) -> str:
        """Hash the DDL as ``build`` emits it: big integer keys as their variants."""
        with big_integer_keys_autoincrement(dialect):
            return ddl_digest(self.metadata, dialect)

    async def build(self, engine: AsyncEngine, backend) -> None:
        async with engine.begin() as connection:
            await connection.run_sync(self._create_all)

    def _create_all(self, connection) -> None:
        with big_integer_keys_autoincrement(connection.dialect):
            self.metadata.create_all(connection)


@contextlib.contextmanager
def big_integer_keys_autoincrement(dialect):
    """Compile each BigInteger autoincrement key as ``with_variant(Integer, "sqlite")``, inside.

    SQLite numbers rows by itself only in a column declared exactly
    ``INTEGER PRIMARY KEY`` (64-bit anyway); a ``BIGINT`` key stays NULL, so
    models whose keys are ``BigInteger`` (BIGSERIAL on PostgreSQL) could not
    insert a row on the default backend. SQLAlchemy's documented answer is
    that variant; we apply it while the framework builds a test database from
    ``metadata``, on this dialect object only, and never change the models:
    the application's own MetaData still says BIGINT wherever else it is
    used. On other dialects the variant changes nothing.
    """
    original = dialect.type_compiler_instance
    dialect.type_compiler_instance = _variant_key_compiler(type(original))(dialect)
    try:
        yield dialect
    finally:
        dialect.type_compiler_instance = original


@functools.cache
def _variant_key_compiler(base: type) -> type:
    """A subclass of a dialect's type compiler that applies the key variant (one per base)."""

    def process(self, type_, **kw):
        column = kw.get("type_expression")
        if (isinstance(column, Column) and column.table is not None
                and column is column.table.autoincrement_column):
            implementation = type_.dialect_impl(self.dialect)
            if isinstance(implementation, TypeDecorator):
                implementation = implementation.impl
            if isinstance(implementation, BigInteger):
                with contextlib.suppress(ArgumentError):  # the model names its own variant
                    type_ = type_.with_variant(Integer(), "sqlite")
        return base.process(self, type_, **kw)

    return type(f"VariantKey{base.__name__}", (base,), {"process": process})


class SqlFileSchema(SchemaSource):
    def __init__(self, path: Path, *, project: str | None = None) -> None:
        self.path = path
        self.project = _project_of(project)
        self.description = f"SQL file {path}"

    def fingerprint(self, dialect) -> str:
        models = ddl_digest(self.metadata, dialect) if self.check_models else ""
        return _digest(self.path.read_text(encoding="utf-8") + models)

    async def build(self, engine: AsyncEngine, backend) -> None:
        async with engine.begin() as connection:
            await backend.execute_script(connection, self.path.read_text(encoding="utf-8"))


class AlembicSchema(SchemaSource):
    """Run ``alembic upgrade head`` once per template; scripts, env.py and ini are the fingerprint.

    Alembic gets the template two ways: its own connection in
    ``config.attributes["connection"]`` (Alembic's documented recipe for
    programmatic use) when env.py reads it, and the URL as ``sqlalchemy.url``
    otherwise. An env.py that builds its URL from the application's settings
    ignores both, and its migrations run elsewhere; the build then checks that
    the template really holds the head revision and fails, naming env.py,
    rather than keep an empty template.
    """

    def __init__(self, ini_path: Path, *, project: str | None = None) -> None:
        self.project = _project_of(project)
        try:
            from alembic.config import Config
        except ImportError as exc:
            raise ConfigurationError(
                f"alembic_ini is {str(ini_path)!r} but alembic is not installed; run: "
                "pip install 'test_framework[alembic]'") from exc
        self.path = ini_path
        self.config = Config(str(ini_path))
        self.description = f"Alembic migrations of {ini_path}"

    @property
    def env_py(self) -> Path:
        from alembic.script import ScriptDirectory
        return Path(ScriptDirectory.from_config(self.config).dir) / "env.py"

    def heads(self) -> set[str]:
        from alembic.script import ScriptDirectory
        return set(ScriptDirectory.from_config(self.config).get_heads())

    def fingerprint(self, dialect) -> str:
        from alembic.script import ScriptDirectory
        script = ScriptDirectory.from_config(self.config)
        revisions = sorted(f"{rev.revision}:{_digest(Path(rev.path).read_text())}"
                           for rev in script.walk_revisions())
        setup = [_digest(self.env_py.read_text(encoding="utf-8")),
                 _digest(self.path.read_text(encoding="utf-8"))]
        if self.check_models:  # changed models must be checked again: a new template
            setup.append(ddl_digest(self.metadata, dialect))
        return _digest("\n".join(revisions + setup))

    async def build(self, engine: AsyncEngine, backend) -> None:
        """Upgrade to head in the template, then check that it happened there."""
        if "attributes" in self.env_py.read_text(encoding="utf-8"):
            async with engine.begin() as connection:
                await connection.run_sync(self._upgrade_on)
        else:  # env.py makes its own engine (and may call asyncio.run): a thread of its own
            self.config.set_main_option(
                "sqlalchemy.url",
                engine.url.render_as_string(hide_password=False).replace("%", "%%"))
            from alembic import command
            await asyncio.to_thread(command.upgrade, self.config, "head")
        async with engine.connect() as connection:
            found = await connection.run_sync(_alembic_versions)
        if found != self.heads():
            raise SchemaBuildError(
                f"Alembic ran {self.env_py}, but the template has "
                f"{'versions ' + str(sorted(found)) if found else 'no alembic_version table'} "
                f"instead of the head {sorted(self.heads())}: env.py ignored both the "
                "connection and the sqlalchemy.url the framework gave it, so the migrations "
                "ran somewhere else (check the database your settings name). Let env.py "
                "take what it is given: connectable = config.attributes.get('connection'); "
                "if connectable is None: build the engine from "
                "config.get_main_option('sqlalchemy.url') (README: Alembic)")

    def _upgrade_on(self, connection) -> None:
        from alembic import command
        self.config.attributes["connection"] = connection
        try:
            command.upgrade(self.config, "head")
        finally:
            self.config.attributes.pop("connection", None)


def _alembic_versions(connection) -> set[str]:
    from sqlalchemy import inspect, text
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


def schema_from(settings: ClassSettings) -> SchemaSource | None:
    """Pick the schema source a class's settings name: alembic_ini, then schema_sql, then
    metadata (the sample schema when the class has none)."""
    project = _digest(str(project_root(settings.folder)))
    alembic_ini = settings.alembic_ini
    schema_sql = None if alembic_ini else settings.schema_sql
    metadata = sample_schema.metadata if settings.metadata is None else settings.metadata.value
    if alembic_ini or schema_sql:
        source = (AlembicSchema(alembic_ini, project=project) if alembic_ini
                  else SqlFileSchema(schema_sql, project=project))
        models = None if metadata is sample_schema.metadata else metadata
        return _with_models(source, models, settings.check_models.value)
    return MetadataSchema(metadata, project=project) if metadata is not None else None


def table_ddl(metadata: MetaData, dialect) -> dict[str, str]:
    """The DDL of each table with its indexes, as ``dialect`` would emit it, by table name."""
    return {table.fullname: str(CreateTable(table).compile(dialect=dialect)) +
            "".join(str(CreateIndex(index).compile(dialect=dialect))
                    for index in sorted(table.indexes, key=lambda i: i.name or ""))
            for table in metadata.sorted_tables}


def ddl_digest(metadata: MetaData, dialect) -> str:
    """Hash the DDL of every table and index, as ``dialect`` would emit it."""
    return _digest("\n".join(table_ddl(metadata, dialect).values()))


def _shape(metadata: MetaData) -> tuple:
    """What a change to a MetaData's tables changes, read without compiling any DDL."""
    return tuple((table.fullname, tuple(table.columns.keys()), len(table.constraints),
                  len(table.indexes)) for table in metadata.tables.values())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
