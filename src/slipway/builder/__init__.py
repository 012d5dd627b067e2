"""Repositories and builds: the git-shell that serves git on a repo host, hooks, builds."""
