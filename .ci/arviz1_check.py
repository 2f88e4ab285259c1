"""Read zoo's result files with arviz >= 1 (Python >= 3.12, no torch): CI's check that both ArviZ generations can.

Usage: python .ci/arviz1_check.py FILE.nc [...]   (files the test suite wrote into $ZOO_RESULT_FILES)
"""

import sys

import arviz as az
import matplotlib
import xarray as xr

matplotlib.use("Agg")
import arviz_plots as azp  # noqa: E402

major = int(az.__version__.split(".")[0])
assert major >= 1, f"this check is for arviz >= 1, found {az.__version__}"
files = sys.argv[1:]
assert files, "no result files given"
for path in files:
    dt = az.from_netcdf(path)
    tree = xr.open_datatree(path, engine="h5netcdf")
    assert dt.attrs["zoo_format"] in ("zoo.posterior", "zoo.calibration", "zoo.fibers", "zoo.ood"), path
    if dt.attrs["zoo_format"] in ("zoo.fibers", "zoo.ood"):
        print(f"{path}: {dt.attrs['zoo_format']}, groups {sorted(dt.children)}")
        continue
    summary = az.summary(dt, group="posterior")
    assert len(summary) > 0 and set(tree["posterior"].dims) >= {"chain", "draw", "observation"}, path
    line = f"{path}: arviz {az.__version__}, summary of {len(summary)} quantities"
    if "prior_sbc" in dt.children:
        first = next(iter(dt["prior_sbc"].data_vars))
        azp.plot_ecdf_pit(dt, group="prior_sbc", var_names=[first])
        line += f", plot_ecdf_pit(group='prior_sbc') on {first}"
    print(line)
print(f"{len(files)} result file(s) read with arviz {az.__version__}")
