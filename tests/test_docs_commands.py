"""Executable documentation, the shell half: every ```bash block in README.md and docs/ runs in a fresh folder, in
the order written.

Each page gets its own empty folder (with a ``docs`` link, so ``docs/examples/...`` paths resolve) and its blocks
run there one after the other with ``bash -e``, so a block may use what an earlier block on the same page wrote. An
HTML comment on the line before a block says how it is run:

- none: fast, run by the default test suite;
- ``<!-- slow -->``: minutes of training, run by ``pytest -m slow``;
- ``<!-- ci -->``: install and test commands, which ``.ci/run`` executes (checked here to appear in it);
- ``<!-- repo -->``: recipes that regenerate shipped files inside the repository (checked here against what the
  shipped files record, not run);
- ``<!-- output -->`` on a ``text`` block: the exact output of the last command of the block before it.

A leading ``pip install ... &&`` is the install step (done once for the test suite) and is left out.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
PAGES += [p for p in sorted((ROOT / "docs").rglob("*.md")) if p not in PAGES]
MARKERS = ("slow", "ci", "repo", "output")
FENCE = re.compile(r"^```(\w*)\s*$")
PIP = re.compile(r"^(pip install [^&]*&&\s*)+")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    marker: str | None
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        marker = re.fullmatch(r"<!--\s*(\w+)\s*-->", lines[i - 1].strip()) if i else None
        out.append(Block(page, i + 1, m.group(1), marker.group(1) if marker else None, "\n".join(lines[i + 1 : j])))
        i = j + 1
    return out


ALL = {page: blocks(page) for page in PAGES}


def test_every_command_block_is_bash_and_markers_are_known():
    """A shell command in a plain ``` block would escape this test: command blocks must say ```bash."""
    for bs in ALL.values():
        for b in bs:
            assert b.marker in (None, *MARKERS), f"{b.name}: unknown marker {b.marker!r}"
            if b.lang == "":
                first = b.text.strip().splitlines()[0] if b.text.strip() else ""
                assert not re.match(r"(zoo|pip|python|pytest|OMP_NUM_THREADS)\b", first), f"{b.name} is not ```bash"
            if b.marker == "output":
                assert b.lang == "text", f"{b.name}: <!-- output --> goes on a ```text block"


def _script(block: Block) -> str:
    lines = [PIP.sub("", line) for line in block.text.splitlines()]
    return "\n".join(line for line in lines if not re.fullmatch(r"pip install .*", line.strip()))


def _run_page(page: Path, tmp_path: Path, *, slow: bool) -> None:
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OMP_NUM_THREADS", None)
    last_output = None
    for b in ALL[page]:
        if b.lang == "text" and b.marker == "output":
            assert last_output is not None, f"{b.name}: <!-- output --> must follow a command block"
            if last_output != "skipped":
                assert last_output.strip() == b.text.strip(), f"{b.name} differs from what the command printed"
            continue
        if b.lang != "bash" or b.marker in ("ci", "repo"):
            continue
        if b.marker == "slow" and not slow:
            last_output = "skipped"
            continue
        script = _script(b)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{b.name} failed:\n{script}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        last_output = _last_command_output(done.stdout, script)


def _last_command_output(stdout: str, script: str) -> str:
    """Output of a one-command block (blocks compared with an output block hold one command)."""
    commands = [s for s in script.splitlines() if s.strip() and not s.strip().startswith("#")]
    return stdout if len(commands) == 1 else "(several commands)"


def _pages(fast: bool) -> list:
    out = []
    for page, bs in ALL.items():
        runnable = [b for b in bs if b.lang == "bash" and b.marker not in ("ci", "repo")]
        if fast and any(b.marker is None for b in runnable):
            out.append(pytest.param(page, id=str(page.relative_to(ROOT))))
        if not fast and any(b.marker == "slow" for b in runnable):
            out.append(pytest.param(page, id=str(page.relative_to(ROOT))))
    return out


@pytest.mark.parametrize("page", _pages(fast=True))
def test_fast_command_blocks_run_in_a_fresh_folder(page, tmp_path):
    _run_page(page, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages(fast=False))
def test_all_command_blocks_run_in_a_fresh_folder(page, tmp_path):
    _run_page(page, tmp_path, slow=True)


def test_ci_blocks_are_what_ci_runs():
    ci = []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            ci.append([w for w in shlex.split(line, comments=True) if w != "-q"])
    for bs in ALL.values():
        for b in (b for b in bs if b.marker == "ci"):
            for line in b.text.splitlines():
                for command in (c.strip() for c in line.split("&&")):
                    assert shlex.split(command) in ci, f"{b.name}: {command!r} is not run by .ci/run"


def test_repo_blocks_match_what_the_shipped_files_record():
    """The recipes printed in the docs are the ones the shipped estimators, models and tables were made with."""
    import json

    import h5py

    from zoo import estimators, registry

    recipes = {e.recipe for e in (estimators.get(n) for n in estimators.names())}
    for name in registry.names():  # the shipped models record the commands that made them
        recorded = json.loads((registry.path(name) / "zoo.json").read_text())["training"]["command"]
        recipes |= set(recorded.split(" && "))
    seen = 0
    for bs in ALL.values():
        for b in (b for b in bs if b.marker == "repo"):
            for command in re.sub(r"\\\n\s*", "", b.text).splitlines():
                words = shlex.split(command)
                if "train" in words:
                    assert command in recipes, f"{b.name}: {command!r} is not a shipped estimator's or model's recipe"
                elif "simulate" in words:
                    out = ROOT / words[words.index("--out") + 1]
                    with h5py.File(out, "r") as f:
                        assert int(f.attrs["seed"]) == int(words[words.index("--seed") + 1]), b.name
                        assert int(f.attrs["n"]) == int(words[words.index("-n") + 1]), b.name
                else:
                    raise AssertionError(f"{b.name}: a repo block holds zoo train / zoo simulate recipes only")
                seen += 1
    assert seen >= 5
