"""Per command: symbolic links planted at every output name and at every temporary name zoo chooses are never written
through. With ``--overwrite`` each link is replaced by the real output and its target stays as it was; without it,
the command refuses (exit 2) and nothing changes. Temporaries are made by ``mkstemp`` / ``mkdtemp`` (unpredictable
names), except the folders zoo names itself (a table's ``OUT.partial/``, a recipe's ``OUT.ckpt``): links there are
tested here too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zoo_cli.main import main

ARM = ["-s", "arm", "-m", "abc", "-b", "300", "--option", "pilot=300", "--theta", "0,0.3,-0.2,0.4", "-n", "20"]
CASES = {  # command -> (arguments with OUT, the names planted as links, relative to OUT or beside it)
    "simulate": (["simulate", "-s", "arm", "-n", "64", "-o", "OUT/t.h5", "-q"], ["t.h5", "t.h5.partial"]),
    "infer": (["infer", *ARM, "--n-resim", "4", "-o", "OUT", "-q"], ["posterior.nc", "corner.png", "arm.png"]),
    "diagnose": (
        ["diagnose", "-s", "gaussian-mixture", "-m", "abc", "-b", "300", "--option", "pilot=300", "--n-test", "4"]
        + ["-n", "20", "--n-resim", "2", "-o", "OUT", "-q"],
        ["calibration.nc", "calibration.md", "calibration.png", "sbc.png", "report.png"],
    ),
    "train": (
        ["train", "-s", "arm", "-m", "cinn", "-b", "1000", "--option", "steps=2", "-o", "OUT/est", "-q"],
        ["est"],
    ),
    "train-checkpoints": (
        ["train", "-s", "arm", "-m", "cinn", "-b", "1000", "--option", "steps=2", "--option", "restarts=1"]
        + ["--option", "checkpoint_every=1", "--option", "checkpoint_dir=OUT/ck", "-o", "OUT/est2", "-q"],
        ["ck/checkpoint.safetensors"],
    ),
    "train-subject": (
        ["train", "subject", "color-mnist-ae", "--steps", "1", "--batch-size", "4", "--out", "OUT/m", "--quiet"],
        ["m"],
    ),
    "fiber": (
        ["fiber", "--subject", "digits-classifier", "--prior", "color-mnist-ddpm", "--input", "0", "-n", "2"]
        + ["--steps", "2", "--reference-size", "20", "--out", "OUT"],
        ["fibers.nc", "fibers.png"],
    ),
    "ood": (
        ["ood", "--prior", "color-mnist-ddpm", "--input", "IMAGES", "--reference-size", "4", "--option", "attempts=1"]
        + ["--option", "num_steps=2", "--out", "OUT"],
        ["ood.nc", "ood_scores.png", "ood_atypical.png"],
    ),
}


# a checkpoint is not an output that --overwrite guards: the run goes ahead and replaces the link
GOES_AHEAD = {"train-checkpoints"}


def _plant(out: Path, names: list[str], victim: Path) -> None:
    for name in names:
        link = out / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(victim, target_is_directory=victim.is_dir())


def _victims(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    return folder, folder / "keep.txt"


def _untouched(folder: Path) -> bool:
    return [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "mine"


def _snapshot(folder: Path) -> dict[str, tuple]:
    return {str(p): (os.lstat(p).st_mode, os.lstat(p).st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("command", sorted(CASES))
@pytest.mark.parametrize("target", ["file", "folder"])
def test_links_at_output_names_are_replaced_never_written_through(tmp_path, command, target):
    args, names = CASES[command]
    folder, file = _victims(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    _plant(out, names, file if target == "file" else folder)
    images = tmp_path / "images.npy"
    np.save(images, np.full((2, 3, 16, 16), 0.5, np.float32))
    args = [a.replace("OUT", str(out)).replace("IMAGES", str(images)) for a in args]
    if command not in GOES_AHEAD:
        before = _snapshot(tmp_path)
        refused = CliRunner().invoke(main, args)  # without --overwrite: the links are the user's, left alone
        assert refused.exit_code == 2 and "Traceback" not in refused.output, refused.output
        assert _snapshot(tmp_path) == before and _untouched(folder)
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert _untouched(folder)
    for name in names:
        if (out / name).exists() or (out / name).is_symlink():
            assert not (out / name).is_symlink(), f"{name} is still a link"


def test_a_linked_checkpoint_folder_of_a_recipe_is_refused(tmp_path):
    """``zoo train subject`` keeps checkpoints in OUT.ckpt, a name zoo chooses: a link planted there is refused."""
    folder, _ = _victims(tmp_path)
    (tmp_path / "m.ckpt").symlink_to(folder, target_is_directory=True)
    args = ["train", "subject", "color-mnist-ae", "--steps", "1", "--batch-size", "4", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(main, [*args, "--quiet"])
    assert result.exit_code == 2 and "symbolic link" in result.output.splitlines()[-1], result.output
    assert _untouched(folder) and not (tmp_path / "m").exists()
