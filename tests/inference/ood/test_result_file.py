"""The OOD result file: written atomically, read back exactly, opened by arviz 0.x (and by arviz >= 1 in CI from
$ZOO_RESULT_FILES), damaged or foreign files refused in one line."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest

from inference.results import OODScores, read_ood, read_posterior


def example() -> OODScores:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (5, 3, 4, 4)).astype(np.float32)
    return OODScores(
        inputs=x,
        score=rng.uniform(0, 1, 5),
        p_value=np.array([0.01, 0.5, 1.0, 0.2, 0.02]),
        reference_score=rng.uniform(0, 1, 9),
        method="lmd",
        kind="distance (median inpainting error)",
        higher_is_ood=True,
        prior="color-mnist-ddpm",
        reference="color-mnist (tied), the training data",
        method_options={"attempts": 10, "block": 0},
        reconstruction=x * 0.5,
        seed=3,
        wall_time_s=1.5,
    )


def test_round_trip_and_both_arviz_generations(tmp_path):
    import arviz as az

    r = example()
    path = r.save(tmp_path / "ood.nc")
    back = read_ood(path)
    for name in ("inputs", "score", "p_value", "reference_score", "reconstruction"):
        np.testing.assert_array_equal(getattr(back, name), getattr(r, name))
    assert (back.method, back.kind, back.prior, back.reference, back.seed) == (
        r.method,
        r.kind,
        r.prior,
        r.reference,
        3,
    )
    assert back.higher_is_ood and back.method_options == {"attempts": 10, "block": 0}
    assert back.flagged(0.05).tolist() == [0, 4] and back.order()[:2].tolist() == [0, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz 0.x notes that "ood" is not one of its own group names
        idata = az.from_netcdf(path)
    assert {"observed_data", "ood", "constant_data"} <= set(idata.groups())
    if os.environ.get("ZOO_RESULT_FILES"):
        os.makedirs(os.environ["ZOO_RESULT_FILES"], exist_ok=True)
        shutil.copy(path, os.path.join(os.environ["ZOO_RESULT_FILES"], "ood.nc"))


def test_without_reconstructions_and_summary_says_when_the_reference_is_too_small(tmp_path):
    r = example()
    r.reconstruction = None
    back = read_ood(r.save(tmp_path / "ood.nc"))
    assert back.reconstruction is None
    assert "use --reference-size 200 or more" in back.summary(0.01)


def test_other_and_damaged_files_are_refused(tmp_path):
    path = example().save(tmp_path / "ood.nc")
    data = bytearray(path.read_bytes())
    (tmp_path / "cut.nc").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="not a readable NetCDF4"):
        read_ood(tmp_path / "cut.nc")
    with pytest.raises(ValueError, match="not a zoo posterior file"):
        read_posterior(path)
    with pytest.raises(FileNotFoundError):
        read_ood(tmp_path / "missing.nc")
