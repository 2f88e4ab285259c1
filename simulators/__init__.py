"""Forward models with priors. ``simulators.get(name, **options)``, ``simulators.names()``."""

from simulators.arm import Arm
from simulators.color_mnist import ColorMNIST
from simulators.gaussian_mixture import GaussianMixture
from simulators.priors import as_prior, check_support, joint, support_bounds
from simulators.protocol import (
    Simulator,
    check_finite,
    check_observation,
    check_theta,
    is_set_valued,
    set_shape,
    validate_observation,
)
from simulators.registry import Registry, UnknownSimulatorError, get, names, options, register
from simulators.sampling import chunk_generator, sample_prior, simulate_cases
from simulators.sbibm import SLCP, BernoulliGLM, GaussianLinear, GaussianLinearUniform, TwoMoons
from simulators.table import read_table, simulate_table
from simulators.tissue import Tissue
from simulators.user import FunctionSimulator, as_simulator, from_function

register("arm", Arm)
register("gaussian-mixture", GaussianMixture)
register("color-mnist", ColorMNIST)
register("tissue", Tissue)
register("two-moons", TwoMoons)
register("gaussian-linear", GaussianLinear)
register("gaussian-linear-uniform", GaussianLinearUniform)
register("slcp", SLCP)
register("bernoulli-glm", BernoulliGLM)

__all__ = [
    "Arm",
    "BernoulliGLM",
    "FunctionSimulator",
    "as_prior",
    "as_simulator",
    "check_support",
    "from_function",
    "joint",
    "support_bounds",
    "ColorMNIST",
    "GaussianMixture",
    "GaussianLinear",
    "GaussianLinearUniform",
    "SLCP",
    "TwoMoons",
    "Registry",
    "Simulator",
    "UnknownSimulatorError",
    "check_finite",
    "check_observation",
    "check_theta",
    "chunk_generator",
    "get",
    "is_set_valued",
    "names",
    "options",
    "register",
    "read_table",
    "sample_prior",
    "set_shape",
    "simulate_cases",
    "simulate_table",
    "validate_observation",
]
