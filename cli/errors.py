"""Turn library errors into one-line messages with exit code 2 (click's usage-error code)."""

from __future__ import annotations

import click


class ZooClickGroup(click.Group):
    """A click group that reports ValueError / FileNotFoundError / FileExistsError as one line, exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError, FileExistsError, KeyError) as e:
            msg = e.args[0] if e.args else str(e)
            raise ZooError(str(msg).splitlines()[0] if msg else type(e).__name__) from e
        except RuntimeError as e:  # zoo.training.TrainingDiverged, matched by name so that torch loads only on use
            if type(e).__name__ != "TrainingDiverged":
                raise
            # not bad input, but still one line and a non-zero exit; the message names the kept checkpoint
            raise click.ClickException(f"training diverged: {e}") from e


class ZooError(click.ClickException):
    """A one-line error (``Error: ...`` on stderr) with exit code 2."""

    exit_code = 2
