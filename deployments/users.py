"""REST: accounts as an admin sees them (changing a role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from deployments.access import ROLE_ERRORS, Admin
from deployments.rest import Services
from deployments.rest_docs import error_responses, validation_responses
from haven.errors import Forbidden, NotFound
from haven.roles import ROLES, Role


def _operation_id(route: APIRoute) -> str:
    return route.name


router = APIRouter(generate_unique_id_function=_operation_id)

OPENAPI_TAGS: list[dict[str, Any]] = [
    {
        "name": "users",
        "description": "Accounts and their roles (`user`, `counsellor`, `admin`); admins only.",
    }
]


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description=f"The account's new role: one of {', '.join(ROLES)}.")


class AccountOut(BaseModel):
    id: str = Field(description="The account's id.")
    username: str = Field(description="The name to log in with.")
    role: Role = Field(description="What the account may do: `user`, `counsellor` or `admin`.")


_ROLE_EXAMPLES: dict[str, Any] = {
    "counsellor": {"summary": "Make an account a counsellor", "value": {"role": "counsellor"}}
}


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    summary="Change an account's role",
    response_description="The account with its new role.",
    responses=error_responses(*ROLE_ERRORS, NotFound()) | validation_responses(),
)
async def change_role(
    user_id: str,
    body: Annotated[RoleChange, Body(openapi_examples=_ROLE_EXAMPLES)],
    admin: Admin,
    svc: Services,
) -> AccountOut:
    """Admins only (403 `forbidden` for anyone else). The account's tokens carry the role they
    were issued with; the new role is checked against the account at once on every route that
    needs one, and new tokens carry it. An admin cannot change their own role, so the last
    admin cannot lock everyone out. An unknown account answers 404 `not_found`."""
    if user_id == admin.user_id:
        raise Forbidden()
    account = await svc.store.set_role(user_id, body.role)
    if account is None:
        raise NotFound()
    return AccountOut(id=account.id, username=account.username, role=account.role)
