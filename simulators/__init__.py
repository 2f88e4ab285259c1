"""Forward models with priors. ``simulators.get(name, **options)``, ``simulators.names()``."""

from simulators.arm import Arm
from simulators.color_mnist import ColorMNIST
from simulators.gaussian_mixture import GaussianMixture
from simulators.protocol import Simulator, check_observation, check_theta
from simulators.registry import UnknownSimulatorError, get, names, options, register
from simulators.sampling import sample_prior
from simulators.table import read_table, simulate_table
from simulators.tissue import Tissue

register("arm", Arm)
register("gaussian-mixture", GaussianMixture)
register("color-mnist", ColorMNIST)
register("tissue", Tissue)

__all__ = [
    "Arm",
    "ColorMNIST",
    "GaussianMixture",
    "Simulator",
    "UnknownSimulatorError",
    "check_observation",
    "check_theta",
    "get",
    "names",
    "options",
    "register",
    "read_table",
    "sample_prior",
    "simulate_table",
]
