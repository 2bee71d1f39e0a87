"""Password hashing with the standard library only: salted PBKDF2-HMAC-SHA256.

Stored as ``pbkdf2_sha256$<iterations>$<salt hex>$<digest hex>`` so the
iteration count can rise later without invalidating existing hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 100_000


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """Return a salted hash of ``password`` for the ``password_hash`` column."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Return whether ``password`` matches a hash made by :func:`hash_password`."""
    try:
        algorithm, iterations, salt, digest = (stored or "").split("$")
        if algorithm != ALGORITHM:
            return False
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                     int(iterations))
    except ValueError:
        return False
    # Constant time, so response timing does not reveal how much of a guess was right.
    return hmac.compare_digest(actual.hex(), digest)
