"""How a job reports progress: `progress(what, done, total)` (the CLI draws a Rich bar)."""

from collections.abc import Callable

Progress = Callable[[str, int, int], None]  # (what, done, total)


def no_progress(what: str, done: int, total: int) -> None:
    return None
