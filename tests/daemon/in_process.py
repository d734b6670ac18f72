"""`paperwire …` in the test's own process: the entry point's `main`, with its error handling,
exit status and output, without an interpreter start-up per command (a second or more each)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from daemon.cli import err, main, out


def cli_env() -> dict[str, str]:
    """The environment of a run: no PAPERWIRE_* from outside, a wide plain terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    env["COLUMNS"] = "200"
    env["TERMINAL_WIDTH"] = "200"
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_paperwire(*args: str, cwd: Path) -> Ran:
    """Run `paperwire ARGS…` in `cwd` (environment and working directory restored after)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_widths = out.width, err.width
    os.environ.clear()
    os.environ.update(cli_env())
    os.chdir(cwd)
    # the consoles read COLUMNS when this module was imported: give them the run's width
    out.width = err.width = int(os.environ["COLUMNS"])
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        out.width, err.width = saved_widths
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Ran(code, stdout.getvalue(), stderr.getvalue())


class Runner:
    """`paperwire --config FILE ARGS…`, checking the exit status (`expect=None`: any)."""

    def __init__(self, config: Path, cwd: Path) -> None:
        self.config = config
        self.cwd = cwd

    def __call__(self, *args: str, expect: int | None = 0) -> Ran:
        done = run_paperwire("--config", str(self.config), *args, cwd=self.cwd)
        if expect is not None:
            assert done.returncode == expect, (
                f"paperwire {' '.join(args)} exited {done.returncode}, expected {expect}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done


def pin_clock(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    """The commands run in this process read `now` as the time, not the wall clock: what a
    test expects from its own `now` (today's date, a cutoff) stays right when midnight passes
    between the test's reading of the clock and the command's."""
    import daemon.app

    monkeypatch.setattr(
        daemon.app, "make_app", functools.partial(daemon.app.make_app, clock=lambda: now)
    )
