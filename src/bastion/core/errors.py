"""Core exceptions. Kept apart from the compiled engine modules (mypyc cannot compile subclasses of
built-in exception types as native classes)."""

from __future__ import annotations

__all__ = ["InvariantViolation"]


class InvariantViolation(AssertionError):
    """A core invariant failed: a bug, never a business outcome. The engine must not continue."""
