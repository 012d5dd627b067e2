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


class KeyChallengeOut(BaseModel):
    challenge: str = Field(description="The exact text to sign; it names you.")
    namespace: str = Field(description="For `ssh-keygen -Y sign -n NAMESPACE`.")
    expires_at: datetime


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(max_length=16 * 1024, description="One OpenSSH public key line.")
    name: str | None = Field(None, max_length=100)
    challenge: str = Field(max_length=200, description="From POST /v1/keys/challenge.")
    signature: str = Field(
        max_length=16 * 1024,
        description="Proof that you hold the key: what `ssh-keygen -Y sign -f KEY "
        "-n slipway-key` prints for the challenge's exact bytes.",
    )


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
    id: str = Field(description="The app's uid, which names its repository on that host.")


class Destination(BaseModel):
    host: str
    port: int


class AuthorizeOut(BaseModel):
    allowed: bool
    repository: Repository | None = None
    # For `tunnel`: the app's database, the only place a tunnel leads.
    database: Destination | None = None


class AccessChangeOut(BaseModel):
    id: int
    kind: str = Field(description="key, collaborator or app")
    user: str | None
    fingerprint: str | None
    app: str | None


class AccessChangesOut(BaseModel):
    now: datetime = Field(description="Ask again with `since` set to this.")
    changes: list[AccessChangeOut]
