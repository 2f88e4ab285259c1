"""No machine-specific absolute paths in the repository: commands and records work on any machine."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSOLUTE = re.compile(r"(?<![\w.])(/work/|/root/|/home/\w|/tmp/\w|/Users/\w|[A-Z]:\\\\Users)")


def test_no_absolute_machine_paths_in_tracked_text_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if (
            path.suffix in (".safetensors", ".h5", ".png", ".npz")
            or not path.is_file()
            or name == "tests/test_paths.py"
        ):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}:{i + 1}" for i, line in enumerate(text.splitlines()) if ABSOLUTE.search(line)]
    assert not found, f"absolute machine paths: {found[:10]}"
