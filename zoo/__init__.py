"""zoo: pretrained models as priors and subjects, and the shared training loop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
