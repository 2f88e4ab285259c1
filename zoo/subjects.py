"""Subjects: the model under test, as a differentiable feature map phi: x -> h.

A :class:`Subject` wraps any ``torch.nn.Module`` (a classifier, a feature extractor, a TorchScript module) and
chooses what h is: the module's output as it is (``"output"``, also called ``"logits"`` / ``"embedding"``),
class probabilities (``"probs"``) or log-probabilities (``"log_probs"``), or the activation of one named layer
(a forward hook; the forward pass stops at that layer). Fiber methods compare h = phi(x) across inputs, so the
map must be differentiable in x — it is, whatever the choice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

OUTPUTS = ("output", "logits", "embedding", "probs", "log_probs", "latent", "class_log_likelihoods")
GENERATIVE_OUTPUTS = ("latent", "class_log_likelihoods")  # of generative classifiers (zoo.generative)


class _Captured(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, value: torch.Tensor) -> None:
        self.value = value


class Subject(nn.Module):
    """A differentiable feature map phi: x -> h built from any module.

    Arguments:
        module: the model under test; called as ``module(x)``.
        output: what h is: ``"output"`` / ``"logits"`` / ``"embedding"`` (the module's output unchanged),
            ``"probs"`` (softmax over the last dim) or ``"log_probs"`` (log-softmax); for generative classifiers
            (:mod:`zoo.generative`) also ``"latent"`` (z = g(x)) or ``"class_log_likelihoods"`` (log p(x | y), (B, K)).
        layer: the name of a submodule (as in ``module.named_modules()``) whose output is h instead; the forward
            pass stops there. A tuple output takes its first element.
        input_shape: the expected shape of one input, e.g. (3, 16, 16); checked on every call when given.
        meta: metadata to carry (``zoo.json`` content for loaded models).

    Shapes: x (B, *input_shape) -> h (B, *feature_shape).

    Example:
        >>> import torch
        >>> from zoo import Subject
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.ReLU(),
        ...                           torch.nn.Linear(5, 3))
        >>> p = Subject(net, output="probs")(torch.rand(2, 3, 2, 2))
        >>> torch.allclose(p.sum(-1), torch.ones(2))
        True
        >>> Subject(net, layer="2")(torch.rand(2, 3, 2, 2)).shape
        torch.Size([2, 5])
    """

    role = "subject"

    def __init__(
        self,
        module: nn.Module,
        *,
        output: str = "output",
        layer: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if output in GENERATIVE_OUTPUTS and not hasattr(module, "latent"):
            raise ValueError(f"output {output!r} needs a generative classifier (e.g. color-mnist-ib-inn)")
        if layer is not None:
            names = dict(module.named_modules())
            if layer not in names or layer == "":
                some = ", ".join(n for n in list(names)[1:8])
                raise ValueError(f"module has no layer {layer!r}; layers include: {some}")
            if output in ("probs", "log_probs"):
                raise ValueError(f"output={output!r} applies to the module's output, not to layer {layer!r}")
        self.module = module
        self.output = output
        self.layer = layer
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.meta = dict(meta or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h = phi(x): features of a batch x (B, *input_shape)."""
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"subject expects inputs of shape (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        if self.layer is not None:
            return self._layer_output(x)
        if self.output == "latent":
            return self.module.latent(x)[0]
        if self.output == "class_log_likelihoods":
            return self.module.class_log_likelihoods(x)
        h = self.module(x)
        if self.output == "probs":
            return h.softmax(-1)
        if self.output == "log_probs":
            return h.log_softmax(-1)
        return h

    def _layer_output(self, x: torch.Tensor) -> torch.Tensor:
        sub = self.module.get_submodule(self.layer)

        def hook(_module, _inputs, out):
            raise _Captured(out[0] if isinstance(out, (tuple, list)) else out)

        handle = sub.register_forward_hook(hook)
        try:
            self.module(x)
        except _Captured as c:
            return c.value
        finally:
            handle.remove()
        raise ValueError(f"layer {self.layer!r} was not called in the forward pass")

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
