"""The default schema: users, threads and messages.

Test classes that set no ``metadata`` get these tables, so the
``create_test_user`` / ``create_test_thread`` / ``create_test_message``
helpers work with zero set-up.
"""

from sqlalchemy import (JSON, Boolean, Column, DateTime, ForeignKey, Integer, MetaData,
                        String, Table, Text)

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(255), nullable=False, unique=True),
    Column("full_name", String(255)),
    Column("password_hash", String(255)),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True)),
)

threads = Table(
    "threads", metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("created_at", DateTime(timezone=True)),
    Column("metadata_", JSON),
)

messages = Table(
    "messages", metadata,
    Column("id", String(64), primary_key=True),
    Column("thread_id", String(64), ForeignKey("threads.id"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("content", Text),
    Column("created_at", DateTime(timezone=True)),
)
