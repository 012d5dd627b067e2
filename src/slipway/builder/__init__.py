"""Repositories and builds: the git-shell that serves git on a repo host, hooks, builds.

Much of it runs in git's hooks and git-shell, so ``repositories``, ``gitshell`` and ``hooks``
use the standard library only. The gateway (repositories, the git command line), the API (job
names, slug paths), the runner (``platform``: the API's internal client; the safe PATH) and
``slipwayd`` import it; it uses the settings, the store's name rules, ``slipway.wire``,
``slipway.jobs`` and ``slipway.host``.
"""
