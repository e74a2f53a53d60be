"""Error types the CLI turns into one-line messages with exit code 2."""


class RecosegError(Exception):
    """Bad input or environment a user can fix; shown as one line, exit code 2."""


class InputError(RecosegError):
    """A patient folder, image or option is unusable."""


class WeightsError(RecosegError):
    """A weights file is missing, corrupt, fails its checksum or is for another stage."""
