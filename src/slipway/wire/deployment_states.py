"""The states of a deployment, shared by the store (which records them), the repo hosts'
builders and the runners (which report them); no imports, so that the pre-receive hook
starts fast.

A deployment is ``queued``, then ``building`` (a builder has it); a successful build makes
a release and the deployment is ``starting`` until a runner has switched traffic to it
(``success``) or given up on it (``crashed-error``, ``timeout-error``, ``hook-error``).
"""

QUEUED = "queued"
BUILDING = "building"
STARTING = "starting"
SUCCESS = "success"
BUILD_ERROR = "build-error"
TIMEOUT_ERROR = "timeout-error"  # the build, or the boot, took too long
CRASHED_ERROR = "crashed-error"  # an instance exited while it booted
HOOK_ERROR = "hook-error"  # the release command failed
ABORTED = "aborted"
RUNNING = (QUEUED, BUILDING)  # a builder has it
FINISHED = (SUCCESS, BUILD_ERROR, TIMEOUT_ERROR, CRASHED_ERROR, HOOK_ERROR, ABORTED)
