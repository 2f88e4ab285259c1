"""Digit images for color-MNIST: the embedded default (scikit-learn's bundled 8x8 digits) and real MNIST files.

The embedded digits are scaled to [0, 1], upsampled bilinearly to 12x12 and padded by 2 pixels to 16x16, so the
outer ring is exact background (0) — the property the exact ``decolorize`` relies on. Real MNIST (28x28) is read
from local IDX files (``*-images-idx3-ubyte[.gz]``) or an NPZ archive (``x_train`` / ``x_test`` or ``images``);
nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch


@lru_cache(maxsize=1)
def _embedded() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.tensor(d.images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    img = torch.nn.functional.interpolate(img[:, None], size=(12, 12), mode="bilinear", align_corners=True)
    img = torch.nn.functional.pad(img, (2, 2, 2, 2))[:, 0].clamp(0, 1)
    return img, torch.tensor(d.target, dtype=torch.long)


def load_digits(path: str | os.PathLike | None = None, *, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Grey digit images in [0, 1] with their labels.

    Arguments:
        path: ``None`` for the embedded 16x16 digits; an IDX images file, a directory holding the standard MNIST
            IDX files, or an NPZ archive for real 28x28 MNIST.
        split: ``"train"`` or ``"test"`` (real MNIST only; the embedded set has one split).

    Returns:
        images of shape (N, H, W) and labels of shape (N,) (labels are -1 where the files carry none).
    """
    if path is None:
        return _embedded()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"digit data {str(p)!r} does not exist; expected an MNIST IDX file, directory or NPZ")
    if p.suffix == ".npz":
        return _load_npz(p, split)
    if p.is_dir():
        prefix = "train" if split == "train" else "t10k"
        images = _find(p, f"{prefix}-images")
        labels = _find(p, f"{prefix}-labels", required=False)
    else:
        images, labels = p, None
    x = torch.tensor(_read_idx(images), dtype=torch.float32) / 255.0
    y = torch.tensor(_read_idx(labels), dtype=torch.long) if labels else torch.full((len(x),), -1)
    return x, y


def _find(d: Path, stem: str, required: bool = True) -> Path | None:
    for f in sorted(d.iterdir()):
        if f.name.startswith(stem):
            return f
    if required:
        raise FileNotFoundError(f"no {stem}-idx* file in {str(d)!r}; expected the standard MNIST IDX file names")
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{str(path)!r} is truncated: header says {dims}, found {arr.size} values")
    return arr.reshape(dims).copy()


def _load_npz(p: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{str(p)!r} is not an .npz archive (NumPy's zip of arrays)")
    try:
        return _npz_digits(p, split)
    except ValueError as e:
        if "allow_pickle" not in str(e) and "pickled" not in str(e):
            raise
        raise ValueError(f"{str(p)!r} holds Python objects (pickled data), which zoo never loads") from None


def _npz_digits(p: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(p, allow_pickle=False) as z:
        key = next((k for k in (f"x_{split}", "images", "x") if k in z), None)
        if key is None:
            raise ValueError(f"{str(p)!r} has no x_{split} / images array; found {', '.join(z.files)}")
        x = z[key].astype(np.float32)
        lkey = next((k for k in (f"y_{split}", "labels", "y") if k in z), None)
        y = z[lkey].astype(np.int64) if lkey else np.full(len(x), -1)
    if x.max() > 1.0:
        x = x / 255.0
    return torch.from_numpy(x), torch.from_numpy(y)
