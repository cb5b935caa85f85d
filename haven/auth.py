"""Passwords (argon2id) and access tokens (JWT, HS256)."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import stat
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from haven.errors import InvalidToken, TokenExpired
from haven.roles import DEFAULT_ROLE, Role, parse_role
from haven.settings import Settings

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
# Tolerated clock difference between the machine that issued a token and the one checking it.
LEEWAY_S = 5
SECRET_FILE_NAME = "jwt_secret"

_hasher = PasswordHasher(type=Type.ID)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    # Hashed with the same parameters as real passwords, so checking it costs the same.
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; False for a wrong password, no account, or a corrupt hash.

    Without an account (`password_hash` None) a dummy hash is checked all the same, so a login
    for an unknown username takes as long as one with a wrong password and does not reveal
    which usernames exist.
    """
    if password_hash is None:
        _matches(_dummy_hash(), password)
        return False
    return _matches(password_hash, password)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    jti: str  # empty for a token issued without one
    issued_at: int
    expires_at: int
    role: Role = DEFAULT_ROLE


class TokenService:
    def __init__(self, secret: str, ttl_s: int) -> None:
        if not secret:
            raise ValueError("the token signing secret is empty")
        if ttl_s <= 0:
            raise ValueError("token lifetime must be positive")
        self._secret = secret
        self._ttl_s = ttl_s

    def issue(self, user_id: str, role: Role = DEFAULT_ROLE) -> tuple[str, int]:
        """A signed token for `user_id` with its role, and its lifetime in seconds."""
        now = int(time.time())
        claims = {
            "sub": user_id,
            "iat": now,
            "exp": now + self._ttl_s,
            "jti": uuid.uuid4().hex,
            "role": role,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), self._ttl_s

    def verify(self, token: str | None) -> TokenClaims:
        """The claims of a valid token; TokenExpired once expired; InvalidToken otherwise."""
        if not token or not isinstance(token, str):
            raise InvalidToken()
        try:
            # `algorithms` is pinned: the header's "alg" is never trusted, so neither "none" nor
            # another algorithm keyed with this secret is accepted.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub"]},
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenExpired() from error
        except jwt.InvalidTokenError as error:
            raise InvalidToken() from error
        user_id, jti = claims["sub"], claims.get("jti", "")
        if not user_id or not isinstance(user_id, str) or not isinstance(jti, str):
            raise InvalidToken()
        # Tokens issued before roles existed carry none: they are a person's, as they were.
        role = parse_role(claims.get("role", DEFAULT_ROLE))
        if role is None:
            raise InvalidToken()
        return TokenClaims(
            user_id=user_id,
            jti=jti,
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            role=role,
        )


def signing_secret(settings: Settings) -> str:
    """The token signing secret: configured, or in development one kept in the data dir.

    The generated secret survives restarts (tokens stay valid) and is shared by every process
    using the same data dir.
    """
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        return settings.jwt_secret.get_secret_value()
    if settings.environment != "development":
        raise RuntimeError(f"HAVEN_JWT_SECRET must be set (environment={settings.environment})")
    return _development_secret(settings.data_dir / SECRET_FILE_NAME)


def _development_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_secret_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); restricting it to 0600", path, mode)
        path.chmod(0o600)
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to generate a new secret")
    return secret


def _create_secret_file(path: Path) -> None:
    # Written in full under a temporary name, then hard-linked into place: the link fails if the
    # file exists, so two processes starting at once agree on the first secret, and neither ever
    # reads a half-written file.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(secrets.token_urlsafe(48))
            tmp.flush()
            os.fsync(tmp.fileno())
        try:
            os.link(tmp_name, path)
            logger.info("generated a development token secret in %s", path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp_name)
