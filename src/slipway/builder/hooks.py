"""The git hooks of our repositories (``python -I -m slipway.builder.hooks HOOK``).

pre-receive: a push of the deploy branch builds before git accepts it (builder.prereceive).
post-receive: once refs are updated, ask the repo host's worker to repack the repository,
from a detached child, so that the push does not wait for it. It never fails a push:
housekeeping that cannot be scheduled waits for the next push.
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
    if os.fork() != 0:
        return 0  # the push ends now; a child of our own asks for the housekeeping
    os.setsid()
    quiet = os.open(os.devnull, os.O_RDWR)
    for descriptor in (0, 1, 2):  # git waits for these to close, not for the child
        os.dup2(quiet, descriptor)
    try:
        from slipway.jobs.client import Client  # Redis, only when there is somewhere to go

        client = Client(redis_url)
        client.enqueue(
            repo_queue(os.environ.get("SLIPWAY_REPO_HOST", "local")),
            HOUSEKEEP_REPOSITORY,
            [repository],
            retry=3,
        )
        client.close()
    finally:
        os._exit(0)


def pre_receive() -> int:
    from slipway.builder import prereceive  # the API and Redis clients: only for pushes

    return prereceive.run()


HOOKS = {"pre-receive": pre_receive, "post-receive": post_receive}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in HOOKS:
        print(f"slipway: usage: hooks {'|'.join(HOOKS)}", file=sys.stderr)
        return 2
    return HOOKS[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
