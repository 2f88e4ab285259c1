"""Turn library errors into one-line messages with exit code 2 (click's usage-error code)."""

from __future__ import annotations

import click


class ZooClickGroup(click.Group):
    """A click group that reports ValueError, OSError and KeyError as one line, exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (ValueError, OSError, KeyError) as e:
            raise ZooError(one_line(e)) from e
        except RuntimeError as e:  # zoo.training.TrainingDiverged, matched by name so that torch loads only on use
            if type(e).__name__ != "TrainingDiverged":
                raise
            # not bad input, but still one line and a non-zero exit; the message names the kept checkpoint
            raise click.ClickException(f"training diverged: {e}") from e


def one_line(e: BaseException) -> str:
    """The first line of an error's message; for an ``OSError`` from the system (which carries an errno), the path
    and the system's words, e.g. ``out/sub: Not a directory`` rather than the bare ``20``."""
    if isinstance(e, OSError) and e.strerror:
        paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
        return f"{paths}: {e.strerror}" if paths else e.strerror
    msg = str(e.args[0]) if e.args else str(e)
    return msg.splitlines()[0] if msg.strip() else type(e).__name__


class ZooError(click.ClickException):
    """A one-line error (``Error: ...`` on stderr) with exit code 2."""

    exit_code = 2
