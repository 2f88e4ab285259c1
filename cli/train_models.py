"""``zoo train prior NAME`` and ``zoo train subject NAME``: train a shipped model with its recipe."""

from __future__ import annotations

import shlex
import sys

import click
import torch

from zoo.recipes import names, train_recipe
from zoo_cli.options import SEED, count, threads_option


def _options(f):
    f = click.option("--out", "out", required=True, type=click.Path(), help="Output model directory.")(f)
    f = click.option("--steps", type=count(), default=None, help="Optimizer steps (default: the recipe's).")(f)
    f = click.option("--seed", type=SEED, default=None, help="Seed of initialization and data (default: recipe's).")(f)
    f = click.option("--batch-size", type=count(), default=None, help="Batch size (default: the recipe's).")(f)
    f = click.option(
        "--data",
        type=click.Path(exists=True),
        default=None,
        help="Local MNIST IDX file/directory or NPZ (28x28) instead of the embedded 16x16 digits.",
    )(f)
    f = click.option("--device", default=None, help="Device (default: cuda if available, else cpu).")(f)
    f = threads_option(f)
    f = click.option(
        "--checkpoint-dir", type=click.Path(), default=None, help="Resumable checkpoints (default: OUT.ckpt)."
    )(f)
    f = click.option("--resume", is_flag=True, help="Continue from the checkpoint.")(f)
    f = click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")(f)
    f = click.option("--quiet", is_flag=True, help="No progress bar.")(f)
    return f


def _run(role: str, name: str, **kw) -> None:
    device = kw.pop("device")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    quiet = kw.pop("quiet")
    command = None
    if role in sys.argv:  # the command recorded in zoo.json; where checkpoints went does not change the weights
        args = sys.argv[sys.argv.index(role) :]
        if "--checkpoint-dir" in args:
            i = args.index("--checkpoint-dir")
            args = args[:i] + args[i + 2 :]
        command = "zoo train " + " ".join(shlex.quote(a) for a in args)
    path = train_recipe(name, kw.pop("out"), role=role, device=device, progress=not quiet, command=command, **kw)
    click.echo(f"wrote {path}")


@click.command("prior")
@click.argument("name", type=click.Choice(names("prior")))
@_options
def prior(name: str, **kw) -> None:
    """Train the shipped prior NAME with its recipe and write a zoo model directory."""
    _run("prior", name, **kw)


@click.command("subject")
@click.argument("name", type=click.Choice(names("subject")))
@_options
def subject(name: str, **kw) -> None:
    """Train the shipped subject NAME with its recipe and write a zoo model directory."""
    _run("subject", name, **kw)
