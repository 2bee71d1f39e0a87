"""The app's engine and sessionmaker, module-level, as in a typical ``myapp/db.py``."""

import os

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from test_framework.backends import DEFAULT_URL

# The app reads its URL from its settings; here, the one the test run is configured with.
DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip() or DEFAULT_URL

engine = create_async_engine(DATABASE_URL)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
