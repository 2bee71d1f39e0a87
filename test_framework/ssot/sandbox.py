"""Point an application's own engine and sessionmaker at the test, and back after it.

A class lists the application's module-level objects::

    sandbox = ["myapp.db:engine", "myapp.db:SessionLocal"]

and for each test the framework changes those very objects, so code that
imported them by value (``from myapp.db import SessionLocal, engine``) and
never heard of the framework works inside the test's isolation:

* An ``async_sessionmaker`` is reconfigured in place, as ``self.session_factory``
  is: in rollback isolation bound to the test's connection with
  ``join_transaction_mode="create_savepoint"``, its sessions followed by the
  same ``SharedSavepoints`` as the framework's own, so the app's commits and
  rollbacks behave identically; in the other modes bound to the test
  database's engine. Its own options (``expire_on_commit``...) stay. Its
  sessions are closed at teardown with the test's.
* An ``AsyncEngine`` changes class for the test (a subclass of its own, so
  ``isinstance`` holds). In rollback isolation ``engine.connect()`` and
  ``engine.begin()`` yield a ``SandboxConnection`` (``sandbox_connection.py``):
  the test's connection behind a framework session, so its commit releases a
  savepoint, its rollback and close undo only its own work. A session bound
  straight to the engine (``AsyncSession(engine)``) cannot join that way and
  is refused with a ``SandboxError`` saying what to list instead. In commit, truncate and
  database isolation the engine uses the test database's engine (its pool),
  so every way of using it works and commits for real there.
  ``engine.dispose()`` does nothing while sandboxed (an app lifespan's
  shutdown must not close the test's pool).

An engine whose URL names another database than the one under test (the
configured ``database_url``, or the test database itself) is refused: the
sandbox would quietly move the app's work elsewhere than its settings say.
Backend, host, port and database name are compared; user, password, driver
and query are not. Everything is restored after the test, whatever happened.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import threading
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from test_framework.config import Setting, class_value
from test_framework.errors import ConfigurationError, SandboxError
from test_framework.log import get_logger, mask_url
from test_framework.ssot.sandbox_connection import SandboxConnection
from test_framework.ssot.shared_savepoints import LABEL_KEY

logger = get_logger(__name__)
ATTRIBUTE = "sandbox"
_ENGINES: dict[int, "Sandbox"] = {}  # id(engine) -> the sandbox it belongs to now
_ENGINE_CLASSES: dict[type, type] = {}
_OTHER_LOOP = ("runs on another event loop (thread {thread!r}) than the test's. The test's "
               "database connection belongs to the test's loop: a client that runs the app "
               "in a thread of its own (Starlette's TestClient) cannot use it. In an async "
               "test, call the app with httpx.AsyncClient(transport=httpx.ASGITransport("
               "app=app), base_url='http://test'), which runs it on the test's loop")


def sandbox_targets(entries: Setting) -> list[tuple[str, Any]]:
    """Resolve a class's ``sandbox`` entries (``ClassSettings.sandbox``) to ``(entry,
    object)``; explain a bad one, naming where it was set."""
    value, where = entries.value, entries.source
    if not value:
        return []
    if isinstance(value, str) or not all(isinstance(entry, str) for entry in value):
        raise ConfigurationError(
            f"{where} is {value!r}; use a list of 'module:attribute' strings naming the "
            "app's module-level engine and sessionmaker, e.g. "
            "['myapp.db:engine', 'myapp.db:SessionLocal']")
    targets, seen = [], set()
    for entry in value:
        target = _resolve(entry, where)
        if id(target) not in seen:
            seen.add(id(target))
            targets.append((entry, target))
    return targets


def _resolve(entry: str, where: str) -> Any:
    module_name, _, attribute = entry.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"{where} has {entry!r}, not 'module:attribute'; name the module and the "
            "module-level object, e.g. 'myapp.db:engine'")
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{where} has {entry!r}, but module {module_name!r} cannot be imported "
            f"({type(exc).__name__}: {exc}); give the dotted module path your app imports "
            "it by") from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            close = difflib.get_close_matches(part, dir(target), n=1)
            raise ConfigurationError(
                f"{where} has {entry!r}, but {module_name}.{attribute} does not exist"
                + (f"; did you mean {close[0]!r}?" if close else "; name a module-level "
                   "engine or sessionmaker"))
        target = getattr(target, part)
    if not isinstance(target, (AsyncEngine, async_sessionmaker)):
        raise ConfigurationError(
            f"{where} has {entry!r}, a {type(target).__name__}; list only AsyncEngine and "
            "async_sessionmaker objects (a sync engine or sessionmaker cannot share the "
            "test's async connection)")
    if isinstance(target, async_sessionmaker) and target.kw.get("binds"):
        raise ConfigurationError(
            f"{where} has {entry!r}, a sessionmaker with binds=; the sandbox binds it to the "
            "one test database: use bind= in the app, or leave it out of the list")
    return target


def _key(url: URL) -> tuple:
    return url.get_backend_name(), url.host, url.port, url.database


def require_same_database(entry: str, url: URL, *, configured: URL, test: URL,
                          where: str) -> None:
    """Refuse an engine on another database than the configured one (or the test's)."""
    mine = _key(url)
    for other in (configured, test):
        theirs = _key(other)
        if all(a == b or (index == 2 and None in (a, b))
               for index, (a, b) in enumerate(zip(mine, theirs))):
            return
    raise ConfigurationError(
        f"{where} has {entry!r}, an engine on {mask_url(url)}, but the tests run against "
        f"{mask_url(configured)} (test database {mask_url(test)}): the sandbox would move "
        "the app's work to another database than its settings name. Point the app at the "
        "same database URL as the tests (or set the class's database_url to the app's URL), "
        "or leave the engine out of the list")


def sandbox_for(test_class: type, resources, session_factory) -> "Sandbox":
    """The sandbox of one test of ``test_class``, from its class resources and session factory."""
    return Sandbox(class_value(test_class, ATTRIBUTE), session_factory=session_factory,
                   test_engine=resources.engine, configured_url=resources.backend.url,
                   test_url=resources.database.url)


class Sandbox:
    """One test's patches of the listed objects; ``restore()`` undoes them, once."""

    def __init__(self, entries: Setting, *, session_factory, test_engine: AsyncEngine,
                 configured_url: URL, test_url: URL) -> None:
        self.where = entries.source
        self.targets = sandbox_targets(entries)
        self.factory = session_factory
        self.test_engine = test_engine
        self.configured_url, self.test_url = configured_url, test_url
        bind = session_factory.kw.get("bind")
        self.connection = bind if isinstance(bind, AsyncConnection) else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.undo: list = []

    def apply(self) -> None:
        """Patch every listed object, registering each undo as it is done."""
        if not self.targets:
            return
        self.loop = asyncio.get_running_loop()
        for entry, target in self.targets:
            if isinstance(target, AsyncEngine):
                require_same_database(entry, target.url, configured=self.configured_url,
                                      test=self.test_url, where=self.where)
                self._patch_engine(entry, target)
            else:
                self._patch_sessionmaker(entry, target)

    def restore(self) -> None:
        """Put every object back as it was; idempotent."""
        while self.undo:
            self.undo.pop()()

    # -- sessionmakers ----------------------------------------------------------

    def _patch_sessionmaker(self, entry: str, maker: async_sessionmaker) -> None:
        kw, session_class = dict(maker.kw), maker.class_
        self.undo.append(lambda: (setattr(maker, "kw", kw), setattr(maker, "class_",
                                                                    session_class)))
        if self.connection is not None:
            maker.kw = {**kw, "bind": self.connection,
                        "join_transaction_mode": "create_savepoint"}
        else:
            maker.kw = {**kw, "bind": self.test_engine}
        sandbox = self

        def __init__(session, *args, **options):
            sandbox.check_loop(f"{entry} made a session that")
            session_class.__init__(session, *args, **options)
            sandbox.follow(session, f"a session of {entry}")

        maker.class_ = type(session_class.__name__, (session_class,),
                            {"__init__": __init__, "__module__": session_class.__module__})

    def follow(self, session, label: str) -> None:
        """Treat an app's session as the framework's own: its savepoints, its close at teardown."""
        session.sync_session.info.setdefault(LABEL_KEY, label)
        if self.factory.savepoints is not None:
            self.factory.savepoints.watch(session.sync_session)
        self.factory.sessions.append(session)

    def check_loop(self, what: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return  # made outside any loop: used later, on whichever loop awaits it
        if running is not self.loop:
            raise SandboxError(f"{what} " + _OTHER_LOOP.format(
                thread=threading.current_thread().name))

    # -- engines ----------------------------------------------------------------

    def _patch_engine(self, entry: str, engine: AsyncEngine) -> None:
        original_class, sync_engine = type(engine), engine.sync_engine
        if id(engine) in _ENGINES:
            raise SandboxError(f"{entry} is already sandboxed by another test still running")
        _ENGINES[id(engine)] = self
        self.undo.append(lambda: _ENGINES.pop(id(engine), None))
        self.undo.append(lambda: setattr(engine, "__class__", original_class))
        engine.__class__ = _sandboxed_class(original_class)
        if self.connection is None:
            self.undo.append(lambda: setattr(engine, "sync_engine", sync_engine))
            engine.sync_engine = self.test_engine.sync_engine
            return
        own = sync_engine.__dict__.get("connect")  # an instance attribute of the app's, if any
        self.undo.append(lambda: setattr(sync_engine, "connect", own) if own is not None
                         else sync_engine.__dict__.pop("connect", None))
        sync_engine.connect = _refuse_direct_sessions(entry)

    def connect(self, engine: AsyncEngine) -> AsyncConnection:
        self.check_loop("the sandboxed engine was asked for a connection that")
        if self.connection is None:
            return AsyncConnection(engine)
        return SandboxConnection(engine, self)


def _refuse_direct_sessions(entry: str):
    def connect(*_args, **_kwargs):
        raise SandboxError(
            f"a session or connection bound straight to the sandboxed engine {entry} "
            "(AsyncSession(engine), or an async_sessionmaker made at call time) tried to "
            "connect. In rollback isolation such a session cannot join the test's "
            "transaction: make it from a module-level async_sessionmaker and list that in "
            "sandbox too, use engine.connect()/engine.begin(), or give the class "
            "isolation = 'commit'")
    return connect


def _sandboxed_class(original: type) -> type:
    """A subclass of the engine's class, same layout, whose connect and dispose ask the sandbox."""
    if original in _ENGINE_CLASSES:
        return _ENGINE_CLASSES[original]

    class SandboxedEngine(original):
        __slots__ = ()

        def connect(self) -> AsyncConnection:
            return _ENGINES[id(self)].connect(self)

        async def dispose(self, close: bool = True) -> None:
            """Keep the test's connections: the app's shutdown runs while a test still uses them."""
            logger.debug("dispose() of a sandboxed engine ignored until the test ends")

    SandboxedEngine.__name__ = SandboxedEngine.__qualname__ = f"Sandboxed{original.__name__}"
    _ENGINE_CLASSES[original] = SandboxedEngine
    return SandboxedEngine
