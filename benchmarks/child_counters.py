"""Load-independent counts for a child run: Python calls and database statements.

Time per test moves with the machine's load; these counts do not (or barely),
so rows measured on a busy machine still compare.  They are taken in a
separate, untimed child run (``child.py --count``) because the profile hook
slows everything down; the parent turns two such runs into a per-test slope.
Standard library only, like ``child.py``, which imports this as a script
sibling.

* ``CallCounter`` -- a ``sys.setprofile`` hook, on this thread and on every
  thread started during the run (aiosqlite's worker), counting ``call``
  events: Python function calls, plus each resumption of a coroutine or
  generator (a resumed ``await`` chain re-enters its frames).  C functions
  are not counted.  Event-loop iterations depend a little on when replies
  arrive, so the count is nearly, not perfectly, load-independent.
* ``StatementCounter`` -- what each driver sent the database, counted where
  nothing can bypass it:

  - SQLite (``sqlite3`` under aiosqlite, the inline driver and Django): the
    connection's trace callback, which SQLite calls for every statement it
    starts, including ``BEGIN``/``SAVEPOINT``/``ROLLBACK TO`` sent on a raw
    cursor or implicitly by the ``sqlite3`` module;
  - asyncpg: writes to the connection's socket (or TLS) transport.  asyncpg
    sends each request -- a prepare, a bind-and-execute, a simple query such
    as ``BEGIN`` or ``ROLLBACK TO SAVEPOINT`` -- as one write and waits for
    the reply before the next, so writes are round trips;
  - psycopg (the Django PostgreSQL rows): libpq's socket is out of reach, so
    such a run reports no statement count rather than a wrong one.
"""
import itertools
import sys
import threading
from asyncio import selector_events, sslproto


class CallCounter:
    """Count Python frame entries between ``start`` and ``stop``."""

    def __init__(self):
        self.calls = None
        self._ticks = itertools.count()

    def _hook(self):
        tick = self._ticks.__next__

        def hook(frame, event, arg):
            if event == "call":
                tick()
        return hook

    def start(self):
        hook = self._hook()
        threading.setprofile(hook)
        sys.setprofile(hook)

    def stop(self):
        sys.setprofile(None)
        threading.setprofile(None)
        self.calls = next(self._ticks)


class StatementCounter:
    """Count statements sent to SQLite and requests sent by asyncpg."""

    def __init__(self):
        self.active = False
        self.uncounted = set()     # drivers seen whose statements cannot be counted
        self._ticks = itertools.count()

    @property
    def statements(self):
        return None if self.uncounted else next(self._ticks) - 1

    def start(self):
        self._ticks = itertools.count(1)   # statements before the run are not the run's
        self.active = True

    def stop(self):
        self.active = False

    def _tick(self, *_args):
        if self.active:
            next(self._ticks)

    def install(self):
        self._install_sqlite()
        self._install_asyncpg()
        try:
            import psycopg
        except ImportError:
            return
        psycopg.connect = self._marking(psycopg.connect, "psycopg")

    def _install_sqlite(self):
        import sqlite3
        import sqlite3.dbapi2

        tick = self._tick

        def traced(connect):
            def connect_traced(*args, **kwargs):
                connection = connect(*args, **kwargs)
                connection.set_trace_callback(tick)
                return connection
            connect_traced.__wrapped__ = connect
            return connect_traced

        sqlite3.connect = traced(sqlite3.connect)
        sqlite3.dbapi2.connect = traced(sqlite3.dbapi2.connect)

    def _install_asyncpg(self):
        counter = self

        def from_asyncpg(protocol):
            return type(protocol).__module__.startswith("asyncpg")

        socket_write = selector_events._SelectorSocketTransport.write
        tls_write = sslproto._SSLProtocolTransport.write

        def write_socket(transport, data):
            if from_asyncpg(transport._protocol):  # a TLS socket's protocol is SSLProtocol
                counter._tick()
            return socket_write(transport, data)

        def write_tls(transport, data):
            if from_asyncpg(transport._ssl_protocol._app_protocol):
                counter._tick()
            return tls_write(transport, data)

        selector_events._SelectorSocketTransport.write = write_socket
        sslproto._SSLProtocolTransport.write = write_tls

    def _marking(self, connect, driver):
        def connect_marked(*args, **kwargs):
            self.uncounted.add(driver)
            return connect(*args, **kwargs)
        connect_marked.__wrapped__ = connect
        return connect_marked
