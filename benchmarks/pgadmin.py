"""Server housekeeping for the PostgreSQL rows, done from the parent process.

The parent creates the databases the scenarios need before timing starts and
drops them, plus anything a child run left behind, when it finishes -- even
after a failure or Ctrl-C -- so no ``bench_*``/``test_*`` database outlives a
benchmark.  Only databases this benchmark created or that a child reported
connecting to are ever dropped: other people may share the server.

asyncpg is used because the scenarios need it anyway; each call opens one
short connection to the maintenance database.
"""
import asyncio


class ServerAdmin:
    """Creates and drops databases on one server."""

    def __init__(self, user, host, port, maintenance_db="postgres"):
        self.user, self.host, self.port = user, host, port
        self.maintenance_db = maintenance_db

    async def _run(self, database, statements, fetch=None):
        import asyncpg

        conn = await asyncpg.connect(user=self.user, host=self.host, port=self.port,
                                     database=database, timeout=10)
        try:
            for sql in statements:
                await conn.execute(sql)
            return await conn.fetch(*fetch) if fetch else None
        finally:
            await conn.close()

    def run(self, statements, database=None, fetch=None):
        return asyncio.run(self._run(database or self.maintenance_db, statements, fetch))

    def check(self):
        """None when the server answers, else the error text."""
        try:
            self.run(["SELECT 1"])
            return None
        except Exception as exc:  # any failure makes the PG rows fail, clearly
            return f"PostgreSQL unavailable: {type(exc).__name__}: {exc}"

    def existing(self, names):
        rows = self.run([], fetch=("SELECT datname FROM pg_database WHERE datname = ANY($1)",
                                   list(names)))
        return sorted(row["datname"] for row in rows)

    def derived_from(self, name):
        """``test_`` databases whose name embeds ``name``: what a library makes
        from a URL naming ``name`` (throwaway clones, schema templates)."""
        rows = self.run([], fetch=(
            "SELECT datname FROM pg_database "
            "WHERE left(datname, 5) = 'test_' AND strpos(datname, $1) > 0", name))
        return sorted(row["datname"] for row in rows)

    def recreate(self, name, setup_sql=None):
        """Drop-if-exists then create ``name``; run ``setup_sql`` inside it."""
        self.drop([name])
        self.run([f'CREATE DATABASE "{name}"'])
        if setup_sql:
            self.run([setup_sql], database=name)

    def drop(self, names):
        """Drop the named databases that exist; returns the ones dropped."""
        present = self.existing(names) if names else []
        for name in present:
            self.run([f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false',
                      f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])
        return present


def is_throwaway(name):
    """Names this benchmark may clean up: its own and test databases."""
    return name.startswith(("test_", "bench_"))
