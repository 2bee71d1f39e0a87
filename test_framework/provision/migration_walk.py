"""The walk through an Alembic project's revisions, and what it found.

For every revision in order from base: call the data hook ("before"),
upgrade to the revision, call the hook ("after"), downgrade that revision
alone, upgrade to it again. Each downgrade thus runs on exactly the schema
its upgrade made, and the upgrade after it fails if the downgrade left
something behind or removed something else. ``_plan`` is that order, once;
two ways of running it follow.

On our connection (env.py takes ``config.attributes["connection"]``), the
whole walk is one run of env.py: its ``context.run_migrations()`` pulls the
steps from the plan as it goes, so Alembic reads the version table once,
not once per step, and the hook and savepoints run between steps. The walk
is one transaction, each round trip a savepoint: a failing revision is
rolled back to where its upgrade left it, and env.py runs again from the
next revision, so one run names every broken revision and still ends at
head. An env.py with an engine of its own gets the URL and runs once per
step in a thread; steps then commit, and the first failure ends the walk.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, NamedTuple

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from test_framework.errors import SchemaBuildError
from test_framework.greenlet_bridge import await_from_sync

if TYPE_CHECKING:  # migration_checks imports this module
    from test_framework.provision.migration_checks import MigrationProject

DataHook = Callable[[str, str, AsyncConnection], Awaitable[None]]
STEPS = {"upgrade": True, "downgrade": False, "upgrade again": True}
FAILED = {"upgrade": "the upgrade failed",
          "downgrade": "the downgrade failed",
          "upgrade again": "the upgrade after its downgrade failed (the downgrade left "
                           "something behind, or removed something else)"}


@dataclass
class MigrationReport:
    """What the walk found; each list holds one line per problem, naming the revision."""

    revisions: int
    seconds: float = 0.0
    round_trip: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the walk did not reach head
    model_differences: list[str] | None = None  # None: no models given, or head not reached
    data: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.round_trip or self.stopped or self.model_differences or self.data)


class _Action(NamedTuple):
    kind: str  # a key of STEPS, or "data", "arrived", "begin", "end"
    position: int
    revision: Any  # alembic.script.Script
    phase: str = ""


def _plan(revisions: list, start: int) -> Iterator[_Action]:
    """The walk's order from revision ``start`` on, for both ways of running it."""
    for position in range(start, len(revisions)):
        revision = revisions[position]
        yield _Action("data", position, revision, "before")
        yield _Action("upgrade", position, revision)
        if position == 0:
            yield _Action("arrived", position, revision)
        yield _Action("data", position, revision, "after")
        yield _Action("begin", position, revision)
        yield _Action("downgrade", position, revision)
        yield _Action("upgrade again", position, revision)
        yield _Action("end", position, revision)


class Walk:
    """One walk of a project's revisions on our connection, or through env.py's own."""

    def __init__(self, project: MigrationProject, connection: AsyncConnection,
                 report: MigrationReport, *,
                 url: URL | None = None, hook: DataHook | None = None) -> None:
        self.project, self.connection, self.report = project, connection, report
        self.url, self.hook = url, hook
        self.current: _Action | None = None
        self.savepoint = None
        if url is not None:
            rendered = url.render_as_string(hide_password=False).replace("%", "%%")
            project.config.set_main_option("sqlalchemy.url", rendered)

    async def run(self) -> bool:
        """Walk every revision; True when the walk reached head."""
        if self.url is not None:
            return await self._run_by_url()
        await self.connection.begin()  # never committed: the database is dropped after
        start: int | None = 0
        while start is not None and start < len(self.project.revisions):
            start = await self.connection.run_sync(self._run_on, start)
        return self.report.stopped is None

    # -- on our connection: one env.py run, steps pulled from the plan ----------------

    def _run_on(self, connection, start: int) -> int | None:
        """Run env.py once from ``start``; after a failure, where to go on (None: stop)."""
        from alembic.runtime.migration import RevisionStep
        revision_map = self.project.script.revision_map

        def steps(heads, context):
            for action in _plan(self.project.revisions, start):
                self.current = action
                if action.kind in STEPS:
                    yield RevisionStep(revision_map, action.revision, STEPS[action.kind])
                elif action.kind == "data":
                    self._data_between_steps(connection, action)
                elif action.kind == "arrived":
                    _check_arrived(connection, self.project, action.revision)
                elif action.kind == "begin":
                    self.savepoint = connection.begin_nested()
                else:
                    self.savepoint, savepoint = None, self.savepoint
                    savepoint.commit()

        self.current = None
        try:
            self._alembic(connection, steps)
        except Exception as exc:
            if self.current is None or self.current.kind not in STEPS:
                raise  # env.py itself, or a wrong database: not a revision's fault
            if self.savepoint is not None:
                self.savepoint, savepoint = None, self.savepoint
                savepoint.rollback()  # back to where the revision's upgrade left it
            return self._failed(self.current, exc)
        return None

    def _data_between_steps(self, connection, action: _Action) -> None:
        if self.hook is None:
            return
        savepoint = connection.begin_nested()
        try:
            await_from_sync(self.hook(action.revision.revision, action.phase, self.connection))
        except Exception as exc:
            savepoint.rollback()
            self._data_failed(action, exc)
        else:
            savepoint.commit()

    # -- through env.py's own engine: one run per step, in a thread -------------------

    async def _run_by_url(self) -> bool:
        for action in _plan(self.project.revisions, 0):
            if action.kind == "data" and self.hook is not None:
                try:
                    await self.hook(action.revision.revision, action.phase, self.connection)
                    await self.connection.commit()
                except Exception as exc:
                    await self.connection.rollback()
                    self._data_failed(action, exc)
            elif action.kind == "arrived":
                await self.connection.run_sync(_check_arrived, self.project, action.revision)
                await self.connection.commit()  # SQLite: hold no lock while env.py writes
            elif action.kind in STEPS:
                try:
                    await asyncio.to_thread(self._alembic, None, self._one_step(action))
                except Exception as exc:
                    self._failed(action, exc)
                    if action.kind != "upgrade":
                        self.report.stopped = (
                            f"{self.project.describe(action.revision)}: the walk stopped "
                            "there: env.py makes its own connection, so a failed step "
                            "cannot be rolled back. Let env.py take the connection it is "
                            "given (README: Alembic and env.py) to check every revision "
                            "in one run")
                    return False
        return True

    # -- both ---------------------------------------------------------------------------

    def _alembic(self, connection, steps: Callable) -> None:
        """Run env.py with ``steps`` as the work, as ``alembic upgrade`` would."""
        from alembic.runtime.environment import EnvironmentContext
        config, script = self.project.config, self.project.script
        if connection is not None:
            config.attributes["connection"] = connection
        try:
            with EnvironmentContext(config, script, fn=steps):
                script.run_env()
        finally:
            config.attributes.pop("connection", None)

    def _one_step(self, action: _Action) -> Callable:
        from alembic.runtime.migration import RevisionStep
        step = RevisionStep(self.project.script.revision_map, action.revision,
                            STEPS[action.kind])
        return lambda heads, context: [step]

    def _failed(self, action: _Action, exc: BaseException) -> int | None:
        """Record a failed step; the position to go on from, None when the walk must stop."""
        line = (f"{self.project.describe(action.revision)}: {FAILED[action.kind]}"
                f"{_where(exc, action.revision)}: {_error(exc)}")
        if action.kind == "upgrade":  # what follows needs this revision
            self.report.stopped = line
            return None
        self.report.round_trip.append(line)
        return action.position + 1

    def _data_failed(self, action: _Action, exc: BaseException) -> None:
        self.report.data.append(f"{self.project.describe(action.revision)}, {action.phase}"
                                f"{_where(exc, self.hook)}: {_error(exc)}")


def _check_arrived(connection, project: MigrationProject, revision) -> None:
    """Stop before any downgrade when the first upgrade did not land in our database."""
    from sqlalchemy import inspect as inspect_schema, text
    found = set()
    if inspect_schema(connection).has_table("alembic_version"):
        found = {row[0] for row in connection.execute(
            text("SELECT version_num FROM alembic_version"))}
    if revision.revision not in found:
        raise SchemaBuildError(
            f"Alembic ran {project.env_py} to upgrade to {revision.revision}, but the "
            f"scratch database has {sorted(found) or 'no alembic_version row'}: env.py "
            "ignored both the connection and the sqlalchemy.url the framework gave it, "
            "and migrated some other database (check the one your settings name). No "
            "downgrade was run. Let env.py take what it is given: connectable = "
            "config.attributes.get('connection') (README: Alembic and env.py)")


def _error(exc: BaseException) -> str:
    """The exception in a line or a few, without SQLAlchemy's link to its error pages."""
    text = "".join(traceback.format_exception_only(exc)).strip()
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith("(Background on this error at"))


def _where(exc: BaseException, source: Any) -> str:
    """`` at file:line``: the failure's last frame in a revision file or in the hook."""
    path = getattr(source, "path", None) or inspect.getsourcefile(source) or ""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if frame.filename == str(path)]
    return f" at {Path(path).name}:{frames[-1].lineno}" if frames else ""
