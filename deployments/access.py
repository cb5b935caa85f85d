"""Role checks for REST routes: a dependency that lets only the given roles through.

The role in the token is checked first (no database read for a person who tries); then the
stored account's, so a role taken away stops working at once rather than when the tokens
issued with it expire.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from deployments.rest import Services, User
from haven.auth import TokenClaims
from haven.errors import Forbidden, InvalidToken, LoggedOut, TokenExpired
from haven.roles import Role, require


def requiring(*allowed: Role) -> Any:
    async def check(user: User, svc: Services) -> TokenClaims:
        require(user.role, *allowed)
        account = await svc.store.get_user(user.user_id)
        if account is None:
            # An erased account's token: as if it had never been valid.
            raise InvalidToken()
        require(account.role, *allowed)
        return user

    return Depends(check)


Counsellor = Annotated[TokenClaims, requiring("counsellor")]
Admin = Annotated[TokenClaims, requiring("admin")]

# What every role-checked route can answer besides its own errors.
ROLE_ERRORS = (InvalidToken(), TokenExpired(), LoggedOut(), Forbidden())
