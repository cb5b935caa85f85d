"""What an account needs to be created: the rules for usernames, passwords and locales, shared by
`POST /auth/register` and the `haven users create` command."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import JsonDict

from haven.crisis_resources import SUPPORTED_LOCALES, normalize_locale

# A short list is enough to turn away the passwords every attacker tries first.
_COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "1234567890",
        "qwertyuiop",
        "letmein123",
        "iloveyou12",
        "welcome123",
        "abcdefghij",
        "0123456789",
        "passw0rd12",
        "qwerty1234",
    }
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Marked for OpenAPI as a password: clients mask it, and it is never echoed in an error.
_SECRET: JsonDict = {"format": "password", "writeOnly": True}


class Credentials(_Body):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=1, max_length=256, json_schema_extra=_SECRET)


class Registration(Credentials):
    password: str = Field(min_length=10, max_length=256, json_schema_extra=_SECRET)
    # Region for crisis resources ("US", "GB", "CA", "IE", "AU"; also "en-GB" style).
    locale: str | None = Field(default=None, max_length=16)

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str | None) -> str | None:
        if value is None:
            return None
        region = normalize_locale(value)
        if region is None:
            raise ValueError(f"locale must be one of {', '.join(SUPPORTED_LOCALES)}")
        return region

    @field_validator("password")
    @classmethod
    def _not_weak(cls, value: str) -> str:
        if value.lower() in _COMMON_PASSWORDS or len(set(value)) < 4:
            raise ValueError("password is too easy to guess")
        if re.fullmatch(r"\d+", value):
            raise ValueError("password must not be only digits")
        return value

    @model_validator(mode="after")
    def _not_username(self) -> Registration:
        if self.username.lower() in self.password.lower():
            raise ValueError("password must not contain the username")
        return self


class PasswordConfirmation(_Body):
    """The account's password, entered again to confirm an irreversible step."""

    password: str = Field(min_length=1, max_length=256, json_schema_extra=_SECRET)
