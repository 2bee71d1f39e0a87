"""The tables, as SQLAlchemy 2.0 declarative models.

Table and column names match ``test_framework.sample_schema``, so the
framework's ``create_test_user`` / ``create_test_thread`` /
``create_test_message`` helpers fill these tables, and the Python-side
defaults below (ids, ``is_active``, ``created_at``) apply to their rows too.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Return the current time in UTC; stored timestamps are always time-zone aware."""
    return datetime.now(timezone.utc)


def new_id(prefix: str):
    """Return a default for string primary keys: ``<prefix>_<32 hex digits>``."""
    return lambda: f"{prefix}_{uuid.uuid4().hex}"


class Base(DeclarativeBase):
    """The declarative base; tests hand ``Base.metadata`` to the framework."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)


class Thread(Base):
    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id("thr"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
    # "metadata" is reserved by declarative classes, hence the trailing underscore.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id("msg"))
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"))
    role: Mapped[str] = mapped_column(String(32))
    content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
