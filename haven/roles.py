"""Account roles: who may do what beyond their own conversations.

`user` is everyone who registers; a `counsellor` sees the queue of escalated conversations;
an `admin` changes roles. The role travels in the access token and is checked again against
the stored account where it grants more than a person's own data, so taking a role away
takes effect before the tokens issued with it expire.
"""

from __future__ import annotations

from typing import Literal, get_args

from haven.errors import Forbidden

Role = Literal["user", "counsellor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
DEFAULT_ROLE: Role = "user"


def parse_role(value: object) -> Role | None:
    """`value` as a role, or None when it is not one."""
    for role in ROLES:
        if value == role:
            return role
    return None


def require(role: Role, *allowed: Role) -> None:
    """Raises `Forbidden` unless `role` is one of `allowed`."""
    if role not in allowed:
        raise Forbidden()
