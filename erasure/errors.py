"""The errors a user can cause: each becomes one line `error: ...` and exit code 2 (erasure.stage.run_stage)."""


class ParamError(ValueError):
    """A parameter has a value that is not allowed; the message names it and what is allowed."""


class DataError(ValueError):
    """An input file or remote resource is missing, corrupt or unreachable."""


class ClaimError(DataError):
    """paper/claims.yaml is malformed (unknown check kind, missing field, bad key)."""
