"""The states of a deployment, shared by the store (which records them) and the repo hosts'
builders (which report them); no imports, so that the pre-receive hook starts fast."""

QUEUED = "queued"
BUILDING = "building"
SUCCESS = "success"
BUILD_ERROR = "build-error"
TIMEOUT_ERROR = "timeout-error"
ABORTED = "aborted"
RUNNING = (QUEUED, BUILDING)
FINISHED = (SUCCESS, BUILD_ERROR, TIMEOUT_ERROR, ABORTED)
