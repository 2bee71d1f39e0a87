"""What the service raises when a request cannot be served; callers map these to responses."""


class ChatError(Exception):
    """Base class for the service's own errors."""


class EmailTaken(ChatError):
    """A user with this email already exists."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a user with email {email!r} already exists")
        self.email = email


class UnknownUser(ChatError):
    """No user has this id."""


class InactiveUser(ChatError):
    """The user was deactivated and may not start threads."""


class UnknownThread(ChatError):
    """No thread has this id."""
