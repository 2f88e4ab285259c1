"""zoo: pretrained models as priors and subjects, and the shared training loop.

Two roles, each a small interface over third-party models (diffusers, normflows, any torch module):

- :class:`Prior` — a generative model p(x): :class:`DiffusionPrior` (denoiser output, Tweedie x0-estimate,
  sampler step, noising, sampling; differentiable) and :class:`FlowPrior` (exact ``log_prob`` and ``sample``);
- :class:`Subject` — a differentiable feature map phi: x -> h (logits, probabilities, an embedding, a layer).

``zoo.load(name_or_path, role=...)`` resolves built-in names, local model directories, TorchScript files,
``package.module:factory`` + safetensors weights and Hub ids, never unpickling untrusted data; ``zoo.save``
writes zoo's own format; ``zoo.models()`` lists the shipped models.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

from zoo.flow_prior import FlowPrior  # noqa: E402
from zoo.loading import load, save  # noqa: E402
from zoo.priors import DiffusionPrior, Prior  # noqa: E402
from zoo.registry import models, names  # noqa: E402
from zoo.subjects import Subject  # noqa: E402

__all__ = ["__version__", "DiffusionPrior", "FlowPrior", "Prior", "Subject", "load", "models", "names", "save"]
