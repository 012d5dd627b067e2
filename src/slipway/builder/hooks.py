"""The git hooks of our repositories (``python -I -m slipway.builder.hooks HOOK``).

post-receive: once refs are updated, ask the repo host's worker to repack the repository.
It never fails a push: housekeeping that cannot be scheduled waits for the next push.
"""

from __future__ import annotations

import os
import sys

from slipway.builder.repositories import HOUSEKEEP_REPOSITORY, REPOSITORY_ID, repo_queue


def post_receive() -> int:
    redis_url = os.environ.get("SLIPWAY_REDIS_URL")
    repository = os.path.basename(os.getcwd()).removesuffix(".git")  # git runs us in GIT_DIR
    if not redis_url or not REPOSITORY_ID.fullmatch(repository):
        return 0
    from slipway.jobs.client import Client  # Redis, only when there is somewhere to go

    try:
        client = Client(redis_url)
        client.enqueue(
            repo_queue(os.environ.get("SLIPWAY_REPO_HOST", "local")),
            HOUSEKEEP_REPOSITORY,
            [repository],
            retry=3,
        )
        client.close()
    except Exception:
        return 0
    return 0


HOOKS = {"post-receive": post_receive}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in HOOKS:
        print(f"slipway: usage: hooks {'|'.join(HOOKS)}", file=sys.stderr)
        return 2
    return HOOKS[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
