"""Request and response bodies of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int


class UserOut(BaseModel):
    name: str
    is_admin: bool
    created_at: datetime


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("default", max_length=100)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="Shown once: only a hash is kept.")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(max_length=16 * 1024, description="One OpenSSH public key line.")
    name: str | None = Field(None, max_length=100)


class KeyOut(BaseModel):
    name: str
    algorithm: str
    bits: int
    fingerprint: str
    public_key: str
    created_at: datetime


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100)


class AppOut(BaseModel):
    name: str
    owner: str
    role: str = Field(description="Your role: owner or collaborator.")
    git_remote: str
    created_at: datetime


class CollaboratorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(max_length=100)


class CollaboratorOut(BaseModel):
    user: str
    role: str
    created_at: datetime


class EnvOut(BaseModel):
    env: dict[str, str]


class EnvChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: dict[str, str | None] = Field(
        description="Variables to set (a string) or to unset (null), all in one step."
    )


class KeyOwnerOut(BaseModel):
    user: str
    key: str
    fingerprint: str


class AuthorizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(max_length=100)
    app: str = Field(max_length=100)
    action: str = Field(pattern="^(push|fetch|tunnel)$")


class Repository(BaseModel):
    host: str = Field(description="Where the repository lives: `local`, or a repo host.")
    path: str


class Destination(BaseModel):
    host: str
    port: int


class AuthorizeOut(BaseModel):
    allowed: bool
    repository: Repository | None = None
    # For `tunnel`: the app's database, the only place a tunnel leads.
    database: Destination | None = None
