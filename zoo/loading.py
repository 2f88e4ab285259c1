"""``zoo.load`` and ``zoo.save``: resolve a model name or path into a :class:`Prior` or :class:`Subject`, safely.

``load(name_or_path, role=...)`` tries, in order:

1. a built-in name (:mod:`zoo.registry`), e.g. ``"color-mnist-ddpm"``;
2. ``"package.module:factory"`` with ``weights=FILE`` and ``trust_code=True``: imports the named module (your
   code, named by you), calls ``factory()`` for an ``nn.Module`` (or a ready :class:`Prior`) and loads the weights
   into it;
3. a local directory: zoo's own format (``zoo.json``), a diffusers pipeline (``model_index.json`` with ``unet/``
   and ``scheduler/``) or a diffusers model directory (``config.json`` + ``*.safetensors``, with a
   ``scheduler_config.json`` beside it or passed as ``scheduler=``);
4. a local TorchScript file or ``torch.export`` program (``.pt2``), as a subject, only with ``trust_code=True``;
5. a Hugging Face Hub id ``owner/name`` (safetensors and JSON files only), when the machine is online.

Loading never unpickles: weights are read from safetensors; the only pickle-format files accepted are weight
files given explicitly with ``weights=``, read with ``torch.load(weights_only=True)`` (tensors and containers
only, no code). Any other pickle-based checkpoint (``torch.save`` files, ``.bin``/``.ckpt``/``.pkl``) is refused
with a message saying how to convert it. Files that carry code (TorchScript, ``torch.export`` programs) and
``module:factory`` names are refused unless ``trust_code=True`` (:mod:`zoo.code_files`; docs/security.md).
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from simulators.devices import check_device
from simulators.files import read_json
from zoo import code_files, registry
from zoo.bounds import check_sizes, header_shapes
from zoo.flow_prior import FlowPrior
from zoo.format import is_zoo_dir, jsonable, one_line, read_zoo_dir, write_zoo_dir
from zoo.priors import DIFFUSERS_SCHEDULERS, DiffusionPrior, Prior
from zoo.subjects import Subject

ROLES = ("prior", "subject")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# diffusers pipelines store images in [-1, 1]: data = model / 2 + 1/2.
DIFFUSERS_NORMALIZATION = {"mean": 0.5, "std": 0.5}


def load(
    name_or_path: str | os.PathLike,
    *,
    role: str | None = None,
    device: str | torch.device = "cpu",
    weights: str | os.PathLike | None = None,
    output: str | None = None,
    layer: str | None = None,
    scheduler: Any = None,
    normalization: dict | None = None,
    trust_code: bool = False,
) -> Prior | Subject:
    """Load a prior or subject by built-in name, path, ``package.module:factory`` or Hub id.

    Arguments:
        name_or_path: what to load (see the module docstring for the resolution order).
        role: ``"prior"`` or ``"subject"``; checked against the model's own role where it has one, and needed to
            choose the wrapper for factories.
        device: where to put the model.
        weights: the weight file for a ``package.module:factory`` (``.safetensors``; ``.pt`` read with
            ``weights_only=True``).
        output, layer: subject options (see :class:`Subject`); default: the model's recorded output.
        scheduler: diffusers directories without a scheduler config: a diffusers scheduler object or class name.
        normalization: diffusers directories: ``{"mean", "std"}`` of the data -> model map (default [0, 1] ->
            [-1, 1]).
        trust_code: allow what runs its author's code: a ``package.module:factory`` (imported and called), a
            TorchScript file or a ``torch.export`` program. Without it they are refused in one line, before anything
            of theirs runs.

    Returns:
        a :class:`Prior` or :class:`Subject` in eval mode on ``device``.

    Raises:
        FileNotFoundError: nothing found under that name / path, or a Hub id while offline.
        ValueError: a pickle-based checkpoint, code without ``trust_code``, a role mismatch, or an unusable model
            directory.

    Example:
        >>> import zoo
        >>> prior = zoo.load("color-mnist-ddpm", role="prior")  # doctest: +SKIP
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be 'prior' or 'subject', got {role!r}")
    s = str(name_or_path)
    device = check_device(device)
    if weights is not None and not _FACTORY.match(s):
        raise ValueError("weights= is only used with a 'package.module:factory' model")
    if registry.is_builtin(s) and not Path(s).exists():
        model = _load_zoo_dir(registry.path(s), role, device, output, layer)
    elif _FACTORY.match(s) and not Path(s).exists():
        if not trust_code:
            raise ValueError(
                f"refusing to import {s!r} without trust_code: a 'package.module:factory' model runs that module's "
                f"code; {code_files.CONSENT}"
            )
        model = _load_factory(s, role, device, weights, output, layer)
    elif Path(s).exists():
        model = _load_path(Path(s), role, device, output, layer, scheduler, normalization, trust_code)
    elif _HUB_ID.match(s):
        model = _load_path(_hub_download(s), role, device, output, layer, scheduler, normalization, trust_code)
    else:
        raise FileNotFoundError(
            f"no model {s!r}: not a built-in ({', '.join(registry.BUILTIN)}), not an existing path, not "
            "'package.module:factory' and not a Hub id 'owner/name'"
        )
    return model


def _check_role(found: str, role: str | None, what: str) -> None:
    if role is not None and role != found:
        raise ValueError(f"{what} is a {found}, but role={role!r} was asked for")


def _load_path(path: Path, role, device, output, layer, scheduler, normalization, trust_code) -> Prior | Subject:
    if path.is_dir():
        if is_zoo_dir(path):
            return _load_zoo_dir(path, role, device, output, layer)
        if (path / "model_index.json").is_file() or (path / "config.json").is_file():
            _check_role("prior", role, f"diffusers directory {str(path)!r}")
            return _load_diffusers(path, device, scheduler, normalization)
        raise ValueError(
            f"{str(path)!r} is neither a zoo model directory (zoo.json) nor a diffusers directory "
            "(config.json or model_index.json)"
        )
    if path.suffix == ".safetensors":
        raise ValueError(
            f"{str(path)!r} holds bare weights; pass the architecture as 'package.module:factory' with "
            f"weights={str(path)!r}"
        )
    file_kind = code_files.kind(path)
    if file_kind is not None:
        what = "TorchScript file" if file_kind == "torchscript" else "torch.export program"
        _check_role("subject", role, f"{what} {str(path)!r}")
        if layer is not None and file_kind == "torchscript":
            raise ValueError(
                f"--layer is not available for TorchScript file {str(path)!r} (hooks cannot be attached to a scripted "
                "module); export a module that returns that layer's output, or export with torch.export (.pt2), "
                "where --layer works"
            )
        module = code_files.load_module(path, file_kind, trust_code=trust_code, device=device)
        return Subject(
            module.eval(), output="output" if output is None else output, layer=layer, meta={"source": str(path)}
        )
    raise ValueError(
        f"refusing to load {str(path)!r}: it is not safetensors, a model directory, TorchScript or a torch.export "
        "program, and a pickle checkpoint can run arbitrary code when loaded; convert it with "
        "safetensors.torch.save_file and load 'package.module:factory' with weights="
    )


def _load_zoo_dir(path: Path, role, device, output, layer) -> Prior | Subject:
    module, meta = read_zoo_dir(path, device=device)
    _check_role(meta["role"], role, f"model {str(path)!r}")
    config = json.loads((path / "config.json").read_text())
    meta = {**meta, "config": config, "source": str(path)}
    spec = meta.get("input", {})
    if meta["role"] == "subject":
        cls = Subject
        if meta.get("architecture") == "zoo.ib-inn":
            from zoo.generative import generative_subject

            cls = generative_subject()
        return cls(
            module,
            output=meta.get("output", "output") if output is None else output,
            layer=layer if layer is not None else meta.get("layer"),
            input_shape=tuple(spec["shape"]) if "shape" in spec else None,
            meta=meta,
        ).eval()
    if output is not None or layer is not None:
        raise ValueError("output= and layer= are subject options; this model is a prior")
    if meta.get("kind") == "diffusion":
        sch = meta.get("scheduler", {})
        return (
            DiffusionPrior(
                module,
                _scheduler(sch.get("class"), sch.get("config", {})),
                normalization=spec.get("normalization"),
                meta=meta,
            )
            .to(device)
            .eval()
        )
    if meta.get("kind") == "flow":
        return FlowPrior(module, normalization=spec.get("normalization"), meta=meta).to(device).eval()
    raise ValueError(f"{str(path)!r}: unknown prior kind {meta.get('kind')!r}; expected 'diffusion' or 'flow'")


def _scheduler(name: str | None, config: dict) -> Any:
    import diffusers

    if name not in DIFFUSERS_SCHEDULERS:
        raise ValueError(f"unsupported scheduler {name!r}; use one of {', '.join(DIFFUSERS_SCHEDULERS)}")
    return getattr(diffusers, name).from_config({k: v for k, v in config.items() if not k.startswith("_")})


def _check_finite(module: torch.nn.Module, where: str) -> None:
    bad = next(
        (k for k, v in module.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())), None
    )
    if bad is not None:
        raise ValueError(f"weights in {where!r} hold NaN or inf in {bad!r}: the model is broken; retrain it")


def _require_safetensors(d: Path) -> None:
    if any(d.glob("*.safetensors")):
        return
    pickles = [f.name for f in d.iterdir() if f.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise ValueError(
            f"refusing to load {str(d)!r}: it holds only pickle weights ({pickles[0]}), which can run code when "
            "loaded; convert them to safetensors (model.save_pretrained(dir, safe_serialization=True))"
        )
    raise FileNotFoundError(f"no *.safetensors weights in {str(d)!r}")


def _load_diffusers(path: Path, device, scheduler, normalization) -> DiffusionPrior:
    from diffusers import UNet2DModel

    if (path / "model_index.json").is_file():
        index = read_json(path / "model_index.json")
        unet_dir = path / "unet"
        sched_cfg = path / "scheduler" / "scheduler_config.json"
        if not isinstance(index, dict) or "unet" not in index or not unet_dir.is_dir():
            raise ValueError(f"diffusers pipeline {str(path)!r} has no unet/ component")
    else:
        unet_dir, sched_cfg = path, path / "scheduler_config.json"
        if not sched_cfg.is_file():
            sched_cfg = path / "scheduler" / "scheduler_config.json"
    cfg = read_json(unet_dir / "config.json")
    if not isinstance(cfg, dict) or cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        got = cfg.get("_class_name") if isinstance(cfg, dict) else type(cfg).__name__
        raise ValueError(f"{str(unet_dir)!r} holds a {got}; zoo priors use UNet2DModel")
    _require_safetensors(unet_dir)
    weights = unet_dir / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{str(unet_dir)!r} has no diffusion_pytorch_model.safetensors (the UNet's weights)")
    shapes = header_shapes(weights)  # bounded loading: the config's sizes against the weights, before diffusers builds
    check_sizes(cfg, shapes, str(unet_dir / "config.json"))
    try:
        net = UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"cannot load the diffusers UNet in {str(unet_dir)!r} ({one_line(e)})") from None
    missing = sorted(set(net.state_dict()) - set(shapes))
    if missing:  # diffusers would start these from a random initialization, with only a warning
        raise ValueError(f"{weights} lacks weights of the UNet its config describes (e.g. {missing[0]!r})")
    _check_finite(net, str(unet_dir))
    if scheduler is None:
        if not sched_cfg.is_file():
            raise ValueError(
                f"{str(path)!r} has no scheduler_config.json; pass scheduler= (e.g. 'DDPMScheduler' or an object)"
            )
        sc = read_json(sched_cfg)
        if not isinstance(sc, dict):
            raise ValueError(f"{sched_cfg} must hold a JSON object of scheduler settings")
        scheduler = _scheduler(sc.get("_class_name"), sc)
    elif isinstance(scheduler, str):
        scheduler = _scheduler(scheduler, {})
    meta = {"role": "prior", "kind": "diffusion", "architecture": "diffusers.UNet2DModel", "source": str(path)}
    return (
        DiffusionPrior(net, scheduler, normalization=normalization or DIFFUSERS_NORMALIZATION, meta=meta)
        .to(device)
        .eval()
    )


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weight file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as e:
        raise ValueError(
            f"refusing {str(path)!r}: it is not a plain tensor checkpoint (weights_only loading rejected it: "
            f"{str(e).splitlines()[0][:120]}); save a state_dict as safetensors instead"
        ) from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} is not a state_dict (a dict of tensors)")
    return state


def _load_factory(spec: str, role, device, weights, output, layer) -> Prior | Subject:
    if role is None:
        raise ValueError(f"loading {spec!r} needs role='prior' or role='subject'")
    if weights is None:
        raise ValueError(f"loading {spec!r} needs weights= (a .safetensors state_dict)")
    module_name, fn_name = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import {spec!r}: {e}") from e
    obj = factory()
    if not isinstance(obj, torch.nn.Module):
        raise ValueError(f"{spec!r} returned a {type(obj).__name__}, expected a torch.nn.Module")
    state = _read_weights(Path(weights))
    target = obj
    if role == "prior":
        if not isinstance(obj, Prior):
            raise ValueError(
                f"{spec!r} must return a zoo Prior (e.g. DiffusionPrior(unet, scheduler)) for role='prior'"
            )
    elif isinstance(obj, Prior):
        raise ValueError(f"{spec!r} returned a Prior, but role='subject' was asked for")
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"weights {str(weights)!r} do not fit {spec!r}: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )
    obj = obj.to(device).eval()
    if role == "prior":
        return obj
    return Subject(
        obj, output="output" if output is None else output, layer=layer, meta={"source": f"{spec} + {weights}"}
    ).eval()


def _hub_download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub is a diffusers dependency
        raise FileNotFoundError(f"{repo_id!r} looks like a Hub id, but huggingface_hub is not installed") from e
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        return Path(
            snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.md"], local_files_only=offline
            )
        )
    except Exception as e:  # noqa: BLE001 - any failure of the Hub (offline, missing repo) ends the same way
        why = "HF_HUB_OFFLINE is set" if offline else f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        raise FileNotFoundError(
            f"could not fetch Hub model {repo_id!r} ({why}); the machine may be offline — download it where "
            "there is a network (huggingface-cli download) and pass the local directory"
        ) from e


def save(model: Prior | Subject, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a prior or subject as a zoo-format directory (``config.json``, ``model.safetensors``, ``zoo.json``).

    Diffusion priors over a diffusers ``UNet2DModel`` are always saveable; other models need the zoo architecture
    they were built from in ``model.meta`` (``"architecture"`` and ``"config"``), as models loaded by zoo have.

    Raises:
        ValueError: the model's architecture is not one zoo can rebuild.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    meta = {k: v for k, v in model.meta.items() if k not in ("format", "format_version", "source")}
    config = meta.pop("config", None)
    if isinstance(model, DiffusionPrior):
        if type(model.net).__name__ != "UNet2DModel":
            raise ValueError("only diffusion priors over a diffusers UNet2DModel can be saved in zoo format")
        module = model.net
        config = {k: v for k, v in dict(model.net.config).items() if not k.startswith("_")}
        meta.update(
            role="prior",
            kind="diffusion",
            architecture="diffusers.UNet2DModel",
            scheduler={
                "class": model.scheduler_class,
                "config": {k: v for k, v in dict(model.scheduler.config).items() if not k.startswith("_")},
            },
        )
    elif isinstance(model, FlowPrior):
        module = model.flow
        meta.update(role="prior", kind="flow")
    elif isinstance(model, Subject):
        module = model.module
        meta.update(role="subject", output=model.output, layer=model.layer)
    else:
        raise ValueError(f"cannot save a {type(model).__name__}; expected a zoo Prior or Subject")
    if config is None or "architecture" not in meta:
        raise ValueError(
            "this model was not built from a zoo architecture (meta lacks 'architecture' / 'config'); "
            "save its state_dict with safetensors and load it with 'package.module:factory'"
        )
    inp = dict(meta.get("input", {}))
    if isinstance(model, Prior):
        inp.setdefault("shape", list(model.shape))
        inp["normalization"] = {"mean": model.norm_mean, "std": model.norm_std}
    elif model.input_shape is not None:
        inp.setdefault("shape", list(model.input_shape))
    meta["input"] = inp
    return write_zoo_dir(path, module, config=jsonable(config), meta=jsonable(meta), overwrite=overwrite)
