"""The only module that reads the clock; everything else takes `now` as a parameter."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
