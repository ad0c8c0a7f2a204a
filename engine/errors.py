"""Errors a user can act on.

Every expected failure in the engine is a :class:`PairForgeError` whose message is
one sentence naming the problem and the fix. Front ends print ``str(error)`` and
never a traceback.
"""

from __future__ import annotations


class PairForgeError(Exception):
    """Base class of every expected, user-facing failure."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ProjectNotFoundError(PairForgeError):
    """No project at the given folder."""


class ProjectBusyError(PairForgeError):
    """Another process holds the project's write lock for too long."""


class ProjectReadOnlyError(PairForgeError):
    """The project folder or database cannot be written."""


class ConfigError(PairForgeError):
    """``pairforge.toml`` holds an invalid value."""


class IngestError(PairForgeError):
    """A file could not be imported."""


class NotFoundError(PairForgeError):
    """A document, chunk, pair or job id does not exist."""


class BackendError(PairForgeError):
    """A generation backend failed; ``retryable`` says whether trying again may help."""

    retryable: bool = False


class BackendUnreachableError(BackendError):
    """The model server cannot be reached."""

    retryable = True


class ModelNotFoundError(BackendError):
    """The model is not available on the server (not pulled)."""


class StructuredOutputUnsupportedError(BackendError):
    """The model or server cannot produce schema-constrained output."""


class BackendTimeoutError(BackendError):
    """The server did not answer in time."""

    retryable = True


class BackendServerError(BackendError):
    """The server answered with an HTTP 5xx error."""

    retryable = True


class InvalidModelOutputError(BackendError):
    """The model's answer was truncated, not JSON, or did not match the schema."""

    retryable = True


class ExportError(PairForgeError):
    """An export could not be written."""
