"""Errors that carry their exit code and a hint, so the CLI can render one clean line."""

from __future__ import annotations


class DnnkitError(Exception):
    """Base error: `message` is the one line shown after `error:`, `hint` an optional next step."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(DnnkitError):
    """Bad usage or bad input (exit 2): raised before any heavy work."""

    exit_code = 2


class RuntimeFailure(DnnkitError):
    """The input was fine but the work failed (exit 1)."""

    exit_code = 1


class CorruptCheckpointError(InputError):
    """A checkpoint file that cannot be parsed safely."""
