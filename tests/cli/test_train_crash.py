"""SIGKILL a real ``zoo train`` process after a checkpoint, resume it: the estimator is bitwise the one an
uninterrupted run writes (weights, best weights, optimizer, step and the batch generator are in one checkpoint file,
replaced atomically). One kill by default, several in the ``slow`` run."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ZOO = [sys.executable, "-c", "from zoo_cli.main import main; main()"]
TRAIN = ["train", "-s", "arm", "--method", "cinn", "--budget", "3000", "--quiet", "--threads", "1"]
TRAIN += [f"--option={o}" for o in ("blocks=2", "hidden=8", "summary_dim=8", "summary_hidden=16", "restarts=1")]
TRAIN += [f"--option={o}" for o in ("steps=1500", "batch_size=64", "val_every=100", "train.checkpoint_every=100")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "est"
    subprocess.run([*ZOO, *TRAIN, "--out", str(out)], check=True, capture_output=True)
    return load_file(str(out / "weights.safetensors"))


def _killed_then_resumed(tmp_path: Path, reference, rng: random.Random, sigkill_when) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "est"
    ck = [f"--option=train.checkpoint_dir={ckpt}"]
    first = (ckpt / "checkpoint.safetensors").exists
    delay = rng.uniform(0, 0.5)  # somewhere after the first checkpoint, possibly inside a later one
    killed = sigkill_when([*ZOO, *TRAIN, *ck, "--out", str(out)], first, delay, stderr=subprocess.DEVNULL)
    assert killed, "the run finished before it could be killed; give it more steps"
    assert not out.exists()
    r = subprocess.run([*ZOO, *TRAIN, *ck, "--option=train.resume=true", "--out", str(out)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    resumed = load_file(str(out / "weights.safetensors"))
    assert resumed.keys() == reference.keys()
    assert all((resumed[k] == reference[k]).all() for k in reference)  # bitwise
    leftovers = [p.name for d in (tmp_path, ckpt) for p in d.iterdir() if p.name.startswith(".")]
    assert not leftovers  # temporaries of the killed run are gone


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in range(1, 6))])
def test_sigkill_then_resume_trains_to_the_same_weights(tmp_path, reference, seed, sigkill_when):
    _killed_then_resumed(tmp_path, reference, random.Random(seed), sigkill_when)
