"""Sidekiq's Redis key names, with the optional redis-namespace prefix (``ns:``).

Only key names are prefixed; set members (queue names, process identities) never are, exactly
as redis-namespace and go-workers do it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str | None = None

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}" if self.namespace else name

    @property
    def queues(self) -> str:
        return self.key("queues")

    def queue(self, name: str) -> str:
        return self.key(f"queue:{name}")

    def queue_name(self, key: str) -> str:
        """``[ns:]queue:NAME`` back to ``NAME``."""
        return key.removeprefix(self.key("queue:"))

    @property
    def schedule(self) -> str:
        return self.key("schedule")

    @property
    def retry(self) -> str:
        return self.key("retry")

    @property
    def dead(self) -> str:
        return self.key("dead")

    @property
    def processes(self) -> str:
        return self.key("processes")

    def process(self, identity: str) -> str:
        return self.key(identity)

    def work(self, identity: str) -> str:
        return self.key(f"{identity}:work")

    def workers(self, identity: str) -> str:
        """Sidekiq 6.4.1's name for the work hash; its Web UI and API read only this one."""
        return self.key(f"{identity}:workers")

    def signals(self, identity: str) -> str:
        return self.key(f"{identity}-signals")

    def stat(self, name: str, day: str | None = None) -> str:
        return self.key(f"stat:{name}:{day}" if day else f"stat:{name}")

    # Reliable fetch: each process registers in a set, with the queues it takes jobs from;
    # a job waits in the process's working list for its queue until it has finished.
    @property
    def reliable_processes(self) -> str:
        return self.key("reliable:processes")

    def reliable_queues(self, identity: str) -> str:
        return self.key(f"reliable:{identity}:queues")

    def working(self, identity: str, queue: str) -> str:
        return self.key(f"reliable:{identity}:queue:{queue}")

    @property
    def recovery_lock(self) -> str:
        return self.key("reliable:recovery-lock")

    def periodic_tick(self, name: str, tick: int) -> str:
        return self.key(f"periodic:{name}:{tick}")
