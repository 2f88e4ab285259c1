"""Bad input never ends in a traceback, a zero exit or a written file: a property-based fuzz of every command.

Each case is a command's valid base invocation with one flag set to a wrong value (tests/cli/fuzz_corpus.py: numbers
out of range or of the wrong type, unknown names, every registered method's options with wrong values, crafted files:
corrupt safetensors, configs that would allocate terabytes, NaN weights, JSON nested 100,000 deep, truncated and
bit-flipped result files, code-carrying model files, existing outputs, symlinks). Every case must end with exit code 2,
one ``Error: ...`` line on stderr that names what was wrong, no traceback and no new or changed file, within
:data:`LIMIT_S` seconds. The default run draws :data:`DEFAULT_EXAMPLES` cases; ``-m slow`` draws >= 1000 and runs every
fixed case once, and prints the counts. ``python tests/cli/test_fuzz.py`` runs every fixed case and lists failures.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_corpus as corpus  # noqa: E402
import fuzz_files  # noqa: E402

from zoo_cli.main import main  # noqa: E402

LIMIT_S = 30
DEFAULT_EXAMPLES = 60
SLOW_EXAMPLES = 1200
TALLY: collections.Counter = collections.Counter()


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` (links not followed) with its type, size and modification time."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            s = os.lstat(p)
            out[os.path.relpath(p, folder)] = (s.st_mode, s.st_size, s.st_mtime_ns)
    return out


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_case(command: str, flag: str, value: str, folder: Path) -> str | None:
    """Run one case in ``folder``; ``None`` if it was refused properly, else what went wrong (and the folder is put
    back as it was)."""
    out = folder / f"out-{time.monotonic_ns()}"
    args = corpus.invocation(command, flag, value, folder, out)
    before = snapshot(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with time_limit(LIMIT_S):
            result = CliRunner().invoke(main, args, catch_exceptions=True)
    finally:
        os.chdir(cwd)
    after = snapshot(folder)
    changed = sorted(k for k in after if before.get(k) != after[k]) + sorted(set(before) - set(after))
    for k in sorted(set(after) - set(before), reverse=True):  # undo, so that later cases see the corpus as made
        p = folder / k
        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    what = f"zoo {' '.join(args)}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        TALLY["tracebacks"] += 1
        return f"{what}: {type(result.exception).__name__}: {result.exception}"
    if "Traceback" in result.output:
        TALLY["tracebacks"] += 1
        return f"{what}: traceback in the output"
    if result.exit_code == 0:
        TALLY["exit 0"] += 1
        return f"{what}: exit 0"
    if changed:
        TALLY["files written"] += 1
        return f"{what}: wrote or changed {changed[:3]}"
    if result.exit_code != 2:
        TALLY["other exit codes"] += 1
        return f"{what}: exit code {result.exit_code}: {lines[-1:] if lines else ''}"
    vague = ("allow_pickle", "Errno", "Overflow when unpacking")  # messages of the library underneath, not zoo's
    if (
        not lines
        or not lines[-1].startswith("Error: ")
        or len(lines[-1].split()) < 3
        or any(v in lines[-1] for v in vague)
    ):
        TALLY["unclear messages"] += 1
        return f"{what}: no one-line error message ({lines[-1:] if lines else 'nothing on stderr'})"
    TALLY["refused"] += 1
    return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("fuzz") / "corpus"
    fuzz_files.write_corpus(f)
    return f


def fuzz(folder: Path, examples: int) -> collections.Counter:
    """Run ``examples`` generated cases; returns how they ended (all must be refused)."""
    before = TALLY.copy()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=corpus.generated())
    def refused(case):
        problem = run_case(*case, folder)
        assert problem is None, problem

    refused()
    return TALLY - before


def test_bad_input_is_refused_in_one_line(folder):
    counts = fuzz(folder, DEFAULT_EXAMPLES)
    assert counts["refused"] >= DEFAULT_EXAMPLES


@pytest.mark.slow
def test_many_bad_inputs_are_refused(folder):
    counts = fuzz(folder, SLOW_EXAMPLES)
    print(f"\ngenerated bad inputs: {sum(counts.values())} tried, {dict(counts)}")
    assert counts["refused"] >= 1000 and sum(counts.values()) == counts["refused"]


@pytest.mark.slow
def test_every_fixed_case_is_refused(folder):
    before = TALLY.copy()
    problems = [p for case in corpus.cases() if (p := run_case(*case, folder))]
    counts = TALLY - before
    print(f"\nfixed bad inputs: {sum(counts.values())} tried, {dict(counts)}")
    assert not problems, "\n".join(problems)


def test_every_registered_method_is_fuzzed():
    """A new posterior or fiber method needs a base invocation and an option kind in fuzz_corpus.py."""
    from inference.fibers import fiber_methods
    from inference.methods import methods

    assert set(methods()) == set(corpus.METHODS) and set(fiber_methods()) == set(corpus.FIBER_METHODS)


@pytest.mark.parametrize("command", sorted(corpus.COMMANDS))
def test_the_base_invocations_work(tmp_path, folder, command):
    """Every case differs from a working invocation in one flag, so its refusal is the flag's doing."""
    out = tmp_path / "out"
    args = [a.replace("{F}", str(folder)).replace("{O}", str(out)) for a in corpus.COMMANDS[command][0]]
    with time_limit(120):
        result = CliRunner().invoke(main, args, catch_exceptions=True)
    ok = (0, 1) if command == "check" else (0,)  # zoo check exits 1 when a (here: 1-step) model fails its check
    clean = result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code in ok and clean, (result.output, result.exception)


if __name__ == "__main__":  # every fixed case, with a list of what failed
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "corpus"
        fuzz_files.write_corpus(f)
        t0 = time.monotonic()
        all_cases = corpus.cases()
        only = sys.argv[1:]
        for case in all_cases:
            if only and case[0] not in only:
                continue
            t = time.monotonic()
            problem = run_case(*case, f)
            if problem:
                print(problem[:400], flush=True)
            if time.monotonic() - t > 5:
                print(f"SLOW {time.monotonic() - t:.1f} s: {case}", flush=True)
        print(f"{len(all_cases)} cases in {time.monotonic() - t0:.0f} s: {dict(TALLY)}")
