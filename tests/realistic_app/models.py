"""Users own projects, projects hold tasks: the typed columns real schemas have.

Each column is here because factories once got it wrong: a ``Uuid`` key,
an ``Enum`` (a CHECK constraint on SQLite), a VARCHAR(5) inside a unique
pair, a CHECK range, JSON, a ``Numeric``, a date, a server-side timestamp,
and NOT NULL foreign keys two levels deep.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (JSON, CheckConstraint, DateTime, Enum, ForeignKey, Numeric, String,
                        UniqueConstraint, func)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Role(enum.Enum):
    member = "member"
    admin = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role", create_constraint=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())

    projects: Mapped[list[Project]] = relationship(back_populates="owner")


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("owner_id", "name"),
                      CheckConstraint("budget >= 0", name="ck_projects_budget"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    budget: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    starts_on: Mapped[date]
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)

    owner: Mapped[User] = relationship(back_populates="projects")
    tasks: Mapped[list[Task]] = relationship(back_populates="project")


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("project_id", "code"),
                      CheckConstraint("priority BETWEEN 1 AND 5", name="ck_tasks_priority"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    code: Mapped[str] = mapped_column(String(5))
    title: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int]
    done: Mapped[bool] = mapped_column(default=False)
    due_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())

    project: Mapped[Project] = relationship(back_populates="tasks")
