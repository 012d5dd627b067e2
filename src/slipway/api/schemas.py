"""Request and response bodies of the public API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool

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
    url: str = Field(description="Where the app answers, through the router.")
    created_at: datetime
    deploy_branch: str | None = Field(
        None, description="Pushes of this branch deploy (set by the first push of main/master)."
    )


class CollaboratorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(max_length=100)


class CollaboratorOut(BaseModel):
    user: str
    role: str
    created_at: datetime


class EnvOut(BaseModel):
    env: dict[str, str]


class EnvChangedOut(EnvOut):
    release_version: int | None = Field(
        description="The release the change made (none before the first build)."
    )


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
    # For `tunnel`: which add-on, `db` (the first) or its id.
    addon: str = Field(default="db", pattern="^(db|ad-[0-9]{1,9})$")


class Repository(BaseModel):
    host: str = Field(description="Where the repository lives: `local`, or a repo host.")
    id: str = Field(description="The app's uid, which names its repository on that host.")


class Destination(BaseModel):
    host: str
    port: int


class AuthorizeOut(BaseModel):
    allowed: bool
    repository: Repository | None = None
    # For `tunnel`: the add-on's address, the only place a tunnel leads.
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


class AppChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deploy_branch: str | None = Field(
        None, max_length=200, description="The branch whose pushes build and deploy."
    )


class DeploymentOut(BaseModel):
    id: int
    status: str = Field(
        description="queued, building, starting (built, released, booting), then success, "
        "build-error, timeout-error, crashed-error, hook-error or aborted."
    )
    ref: str
    commit: str
    pusher: str | None
    buildpack: str | None
    error: str | None = Field(description="Why it failed, as the pusher saw it.")
    release_version: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None = Field(description="Seconds from the build's start to its end.")


class ReleaseOut(BaseModel):
    version: int
    description: str
    commit: str
    buildpack: str
    process_types: dict[str, str]
    release_command: str | None
    first_deploy_command: str | None = Field(
        None, description="app.json's postdeploy: run once, at the app's first deploy."
    )
    slug_size: int
    created_by: str | None
    created_at: datetime
    deployment_id: int | None
    build_seconds: float | None
    status: str | None = Field(
        description="starting, then how its start went: success, crashed-error, "
        "timeout-error, hook-error or aborted (a newer one was deployed first)."
    )


# Ids in paths: within the database's integer range, so that a huge one is a 422, not a 500.
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SlugId = Annotated[str, Path(pattern="^[0-9a-f]{32}$")]


# -- /internal, for repo hosts ------------------------------------------------------------


class RefUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(max_length=1000)
    old: str = Field(pattern="^[0-9a-f]{40,64}$")
    new: str = Field(pattern="^[0-9a-f]{40,64}$")


class PushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    updates: list[RefUpdateIn] = Field(max_length=1000)
    pusher: str | None = Field(None, max_length=100)


class PushOut(BaseModel):
    app: str
    deploy_branch: str | None
    deployment_id: int | None = Field(description="The deployment the push starts, if any.")
    ref: str | None = Field(description="The ref that deploys.")
    skipped: list[str] = Field(description="Pushed refs that do not deploy.")


class BuildInfoOut(BaseModel):
    app: str
    app_uid: str
    commit: str
    ref: str
    pusher: str | None
    env: dict[str, str] = Field(description="The config vars, for the buildpack's ENV_DIR.")
    first_release: bool = Field(
        description="The app has no release yet: its app.json's env, formation and scripts "
        "apply to this build's release."
    )


class ConfigDefaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str | None = None
    generator: Literal["secret"] | None = Field(None, description="secret: 64 random hex.")
    required: bool = False


class ManifestIn(BaseModel):
    """What the app's app.json asks of its first release (slipway.builder.manifest)."""

    model_config = ConfigDict(extra="forbid")
    env: dict[str, ConfigDefaultIn] = Field(
        default_factory=dict, description="Defaults, never over a config var already set."
    )
    formation: dict[str, int] = Field(default_factory=dict)
    first_deploy_command: str | None = Field(None, max_length=10_000)


class BuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug_id: str = Field(pattern="^[0-9a-f]{32}$")
    slug_size: int = Field(ge=0)
    commit: str = Field(pattern="^[0-9a-f]{40,64}$")
    buildpack: str = Field(max_length=100)
    process_types: dict[str, str]
    release_command: str | None = Field(None, max_length=10_000)
    manifest: ManifestIn | None = None
    build_seconds: float | None = None


class FinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(pattern="^(success|build-error|timeout-error|aborted)$")
    error: str | None = Field(None, max_length=10_000)
    log: str | None = None
    build: BuildIn | None = None


class StartedIn(BaseModel):
    """How a runner's start of a release ended."""

    model_config = ConfigDict(extra="forbid")
    status: str = Field(pattern="^(success|crashed-error|timeout-error|hook-error|aborted)$")
    error: str | None = Field(None, max_length=10_000)


class RunningReleaseOut(BaseModel):
    app_uid: str
    version: int


class ProcessOut(BaseModel):
    name: str = Field(description="web.1, worker.2...")
    type: str
    state: str = Field(description="starting, up, crashed or stopping.")
    release: int
    host: str = Field(description="The runner it runs on.")
    pid: int | None
    since: datetime = Field(description="When it last started.")
    restarts: int = Field(description="Restarts after quick crashes (reset by a deploy).")
    last_exit: str | None = Field(description="How it last ended, when it crashed.")


class StatsOut(BaseModel):
    name: str
    cpu_percent: float = Field(description="Of one core, over the last 2 s.")
    memory: int = Field(description="Bytes in use (its cgroup's count where it has one).")
    memory_peak: int = Field(description="Bytes, at most since it started.")
    memory_limit: int | None = Field(description="Bytes, where it has a limit.")
    restarts: int
    sampled_at: datetime


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1, description="The release to deploy again.")


class FormationOut(BaseModel):
    formation: dict[str, int] = Field(description="Instances per process type.")


class ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    formation: dict[Annotated[str, Field(max_length=64)], int] = Field(
        min_length=1, max_length=50, description='New counts, e.g. {"web": 2}.'
    )


class RestartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: list[Annotated[str, Field(max_length=80)]] = Field(
        default_factory=list,
        max_length=50,
        description="Process types (web) or instances (web.1); none: all of them.",
    )


class CurrentReleasesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runner: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")


class CurrentReleasesOut(BaseModel):
    releases: list[RunningReleaseOut]


class FinishOut(BaseModel):
    status: str
    release_version: int | None
    keep_slugs: list[str] = Field(description="The app's slugs to keep; others may go.")


class ReleaseRunOut(BaseModel):
    app: str
    app_uid: str
    version: int
    slug_id: str
    commit: str
    process_types: dict[str, str]
    config: dict[str, str]
    formation: dict[str, int] = Field(description="Instances per process type.")
    release_command: str | None = Field(description="Run before traffic moves (Procfile).")
    first_deploy_command: str | None = Field(
        None,
        description="app.json's postdeploy, after the release command: only at the "
        "first deploy of the app's first release.",
    )
    superseded: bool = Field(description="A newer release exists: deploy that one instead.")


class AddOnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=40, description="postgresql or redis.")
    plan: str | None = Field(None, max_length=40, description="Default: the smallest.")


class AddOnOut(BaseModel):
    id: str = Field(description="ad-N: what `addons remove` and `db-tunnel` take.")
    kind: str
    plan: str | None
    variables: list[str] = Field(description="The config variables it set.")
    tunnel: str = Field(description="The host name `db-tunnel` asks the gateway for.")
    created_at: datetime


class AddOnAddedOut(AddOnOut):
    release_version: int | None = Field(
        description="The release its variables made (none before the first build)."
    )


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, pattern=r"^[^/\x00]+$")
    size: int = Field(ge=0)


class OneOffIn(BaseModel):
    """The first message of a `slipway run` WebSocket (see slipway.wire.oneoff_frames)."""

    model_config = ConfigDict(extra="forbid")
    command: str = Field(min_length=1, max_length=65_536)
    tty: bool = False
    cols: int = Field(80, ge=1, le=10_000)
    rows: int = Field(24, ge=1, le=10_000)
    term: str = Field("xterm-256color", max_length=64, pattern=r"^[A-Za-z0-9._+-]+$")
    env: dict[str, str] = Field(default_factory=dict, max_length=100)
    size: Literal["S", "M", "L", "XL"] | None = None
    detached: bool = False
    files: list[UploadIn] = Field(default_factory=list, max_length=20)


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: str = Field(max_length=300, description="A full DNS name, e.g. www.example.com.")
    certificate: str | None = Field(
        None,
        max_length=64 * 1024,
        description="A certificate you bring (PEM, leaf first, then its chain); with private_key.",
    )
    private_key: str | None = Field(None, max_length=64 * 1024, description="Its key (PEM).")


class DomainOut(BaseModel):
    hostname: str
    state: str = Field(description="pending-dns, issuing, active, failed or http-only.")
    source: str = Field(description="acme (the platform's certificate) or custom (brought).")
    dns_target: str = Field(description="Where its DNS must point: a CNAME to this name.")
    expires_at: datetime | None
    issuer: str | None
    reason: str | None = Field(description="Why the last attempt failed.")
    retry_at: datetime | None = Field(description="When the next attempt is.")
    created_at: datetime


class ForceHttpsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool


class ForceHttpsOut(BaseModel):
    force_https: bool


class RoutedDomainOut(BaseModel):
    """A domain as the router serves it (internal: it carries the key)."""

    hostname: str
    app_host: str = Field(description="APP.DOMAIN: the app's own host, which the router routes.")
    force_https: bool
    certificate: str | None
    private_key: str | None


class RoutedDomainsOut(BaseModel):
    domains: list[RoutedDomainOut]
    force_https_hosts: list[str] = Field(description="APP.DOMAIN of the apps forcing HTTPS.")


class DueDomainsOut(BaseModel):
    hostnames: list[str]


class OrderOut(BaseModel):
    """What the router's host needs to order a domain's certificate (internal)."""

    hostname: str
    order_url: str | None
    order_key: str | None
    account: dict[str, str | None] | None


class OrderSavedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_url: str = Field(max_length=500)
    order_key: str = Field(max_length=64 * 1024)


class IssuedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate: str = Field(max_length=64 * 1024)
    private_key: str = Field(max_length=64 * 1024)


class FailedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=4000)
    dns: bool = False


class AcmeAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: str = Field(max_length=500)
    key: str = Field(max_length=16 * 1024)
    registration: str | None = Field(None, max_length=16 * 1024)
