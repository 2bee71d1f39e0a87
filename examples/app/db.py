"""The app's engine and sessionmaker: made once, at import, from ``DATABASE_URL``.

As in most web apps, routes import these module-level objects by value. The
tests never hand the app anything: they list both in ``sandbox`` and the
framework points them at the test's own connection (``README.rst``,
*Sandboxing your application's engine*).
"""

import os

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

DATABASE_URL = os.environ.get("DATABASE_URL", "").strip() or "sqlite+aiosqlite:///chat.sqlite3"

engine = create_async_engine(DATABASE_URL)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
