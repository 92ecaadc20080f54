"""Exceptions of the core. Every one carries a message fit to return to a service caller."""


class SpatialError(Exception):
    """Base class: a request or input that cannot be served. ``str(err)`` is the user-facing message."""


class InputError(SpatialError, ValueError):
    """Sensor input that cannot be used (bad encoding, size mismatch, zero intrinsics, no valid depth...)."""


class ResolutionError(SpatialError, LookupError):
    """An object name that matches no object, or more than one. ``candidates`` lists the ids considered."""

    def __init__(self, message: str, candidates: list[str] | None = None):
        super().__init__(message)
        self.candidates = list(candidates or [])


class QueryError(SpatialError, ValueError):
    """A malformed query: unknown relation or quantity, missing reference, unparseable question."""
