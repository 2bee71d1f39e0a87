"""An engine on another database than the one the tests run against: the sandbox refuses it."""

from sqlalchemy.ext.asyncio import create_async_engine

engine = create_async_engine("sqlite+aiosqlite:///another_app.sqlite3")
