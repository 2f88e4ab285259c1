"""What ``zoo list`` shows, kept as a file so that listing needs no torch (``zoo list`` starts in well under 1 s).

``catalog.json`` holds the built-in simulators with their options, the posterior methods, the fiber methods, the OOD
scores and the shipped estimators. :func:`build` reads them from the live registries (importing the library); a
test checks that the file equals :func:`build`, so it cannot go stale. Regenerate it after adding to a registry::

    python -m zoo_cli.catalog
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("catalog.json")


def build() -> dict[str, Any]:
    """The catalog from the live registries (imports simulators, inference and zoo); plugins are not included."""
    import inference
    import simulators
    import zoo.estimators
    from inference import fibers, ood
    from simulators.registry import _PLUGINS

    builtin = [n for n in simulators.names() if n not in _PLUGINS]
    return {
        "simulators": {n: {k: repr(v) for k, v in simulators.options(n).items()} for n in builtin},
        "methods": inference.methods(),
        "fiber_methods": {n: fibers.fiber_method_spec(n).description for n in fibers.fiber_methods()},
        "ood_scores": {n: ood.score_spec(n).description for n in ood.scores()},
        "estimators": {
            n: {
                "simulator": zoo.estimators.get(n).simulator,
                "method": zoo.estimators.get(n).method,
                "budget": zoo.estimators.get(n).budget,
                "description": zoo.estimators.get(n).description,
            }
            for n in zoo.estimators.names()
        },
    }


def load() -> dict[str, Any]:
    """The catalog file."""
    return json.loads(PATH.read_text())


def plugins() -> list[str]:
    """Names of installed simulator plugins (entry points ``zoo.simulators``), without loading them."""
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="zoo.simulators"))


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {PATH}")
