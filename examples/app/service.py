"""ChatService: the application's operations, each one session and one commit.

Each method opens its own session from the factory and commits before it
returns, as a request handler would; nothing is shared between calls. The
factory should be ``async_sessionmaker(engine, expire_on_commit=False)``:
returned objects are read after their session has closed, and reloading an
expired attribute would need I/O that async code cannot do implicitly.

Lines marked ``# after await`` run only once an awaited database call has
resumed; ``tests/functional`` checks that coverage reports them as run.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import EmailTaken, InactiveUser, UnknownThread, UnknownUser
from app.models import Message, Thread, User
from app.passwords import hash_password, verify_password

ROLES = frozenset({"system", "user", "assistant"})


def normalize_email(email: str) -> str:
    """Return the form emails are stored and looked up in, so case never duplicates a user."""
    normalized = email.strip().lower()
    if "@" not in normalized:
        raise ValueError(f"{email!r} is not an email address")
    return normalized


class ChatService:
    """Register users, start threads, post and read messages."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def register_user(self, email: str, full_name: str, password: str) -> User:
        """Create an active user; raise ``EmailTaken`` if the email is in use.

        The unique constraint decides, not a prior SELECT, so two concurrent
        registrations cannot both succeed.
        """
        user = User(email=normalize_email(email), full_name=full_name,
                    password_hash=hash_password(password))
        async with self._sessions() as session:
            session.add(user)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                raise EmailTaken(user.email) from exc  # after await
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        """Return the active user with this email and password, else None."""
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.email == normalize_email(email)))
        if user is None or not user.is_active:  # after await
            return None
        return user if verify_password(password, user.password_hash) else None

    async def start_thread(self, user_id: int, title: str) -> Thread:
        """Open a conversation for an active user; its title is kept in ``metadata_``."""
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:  # after await
                raise UnknownUser(f"no user has id {user_id!r}")
            if not user.is_active:
                raise InactiveUser(f"user {user_id!r} is deactivated")
            thread = Thread(user_id=user_id, metadata_={"title": title})
            session.add(thread)
            await session.commit()
        return thread

    async def post_message(self, thread_id: str, role: str, content: str) -> Message:
        """Append a message to a thread."""
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {sorted(ROLES)}")
        async with self._sessions() as session:
            if await session.get(Thread, thread_id) is None:
                raise UnknownThread(f"no thread has id {thread_id!r}")  # after await
            message = Message(thread_id=thread_id, role=role, content=content)
            session.add(message)
            await session.commit()
        return message

    async def thread_history(self, thread_id: str) -> list[Message]:
        """Return a thread's messages, oldest first."""
        async with self._sessions() as session:
            if await session.get(Thread, thread_id) is None:
                raise UnknownThread(f"no thread has id {thread_id!r}")
            messages = await session.scalars(
                select(Message).where(Message.thread_id == thread_id)
                .order_by(Message.created_at, Message.id))
            return list(messages)  # after await

    async def deactivate_user(self, user_id: int) -> bool:
        """Stop a user from signing in or starting threads; return whether the user exists."""
        async with self._sessions() as session:
            result = await session.execute(
                update(User).where(User.id == user_id).values(is_active=False))
            await session.commit()
        return result.rowcount == 1  # after await
