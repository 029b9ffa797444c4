"""Hidden tests of hw5."""

from __future__ import annotations

import math

import torch
from hw5_helpers import pinn_weights  # the public helper module (public/ is on the path)

from graders.dsl import ExerciseBuilder, Suite
from graders.student import HelperSpec

SEEDS = [51, 52, 53]
suite = Suite(seeds=SEEDS)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- 1. heat_residual --------------------------------------------------------------------------


def pinn(seed: int, hidden: int = 32, depth: int = 2) -> HelperSpec:
    return HelperSpec(
        "hw5_helpers:SmallPINN", args=(hidden, depth), state=pinn_weights(seed, hidden, depth)
    )


def points(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x uniform in [-1, 1], t uniform in [0, 1], both float32 [n]."""
    g = _gen(seed)
    x = torch.rand(n, generator=g) * 2 - 1
    t = torch.rand(n, generator=g)
    return x, t


@suite.exercise("heat_residual")
def _heat(ex: ExerciseBuilder) -> None:
    x, t = points(0, 8)
    ex.compare(
        "example: SmallPINN(32, 2) at 8 points, alpha 0.1",
        (pinn(0), x, t, 0.1),
        points=0.5,
        visibility="visible",
    )
    x, t = points(SEEDS[0], 64)
    ex.compare("another network, 64 points, alpha 0.01", (pinn(SEEDS[0]), x, t, 0.01), points=0.5)
    x, t = points(SEEDS[1], 32)
    ex.compare(
        "u = sin(pi x) exp(-t), alpha 0.3",
        (HelperSpec("hw5_helpers:SineDecay", args=(1.0,)), x, t, 0.3),
        points=0.5,
    )
    alpha = 0.2
    x, t = points(SEEDS[2], 40)
    ex.compare(
        "an exact solution of the heat equation has zero residual",
        (HelperSpec("hw5_helpers:SineDecay", args=(alpha * math.pi**2, 2.0)), x, t, alpha),
        expected=torch.zeros(40),
        rtol=0.0,
        atol=1e-4,
        points=0.5,
        visibility="after_due",
    )
    x, t = points(SEEDS[0] + 100, 16)
    ex.compare(
        "u = x^3 t + x^2 + t^2 (residual x^3 + 2t - alpha (6xt + 2))",
        (HelperSpec("hw5_helpers:PolynomialField"), x, t, 0.5),
        points=0.5,
    )
    x, t = points(SEEDS[1] + 100, 24)
    ex.compare("alpha = 0 leaves du/dt", (pinn(SEEDS[1] + 100), x, t, 0.0), points=0.25)
    x, t = points(SEEDS[2] + 100, 1)
    ex.compare("a single point", (pinn(SEEDS[2] + 100), x, t, 0.7), points=0.25)
    x, t = points(SEEDS[0] + 200, 48)
    ex.compare(
        "a deeper, wider network: SmallPINN(64, 3)",
        (pinn(SEEDS[0] + 200, 64, 3), x, t, 0.05),
        points=0.5,
    )
    x, t = points(SEEDS[1] + 200, 512)
    ex.compare(
        "512 points: each residual depends on its own point only",
        (pinn(SEEDS[1] + 200, 16, 2), x, t, 1.0),
        points=0.5,
    )


# -- 2. laplacian_1d ---------------------------------------------------------------------------


@suite.exercise("laplacian_1d")
def _laplacian(ex: ExerciseBuilder) -> None:
    grid = torch.arange(6, dtype=torch.float32) * 0.5
    ex.compare(
        "example: u = x^2 on 6 points, dx 0.5 (all 2)",
        (grid**2, 0.5),
        points=0.5,
        visibility="visible",
    )
    grid = torch.arange(40, dtype=torch.float32) * 0.25
    ex.compare("u = 0.5 sin(x), dx 0.25", (0.5 * torch.sin(grid), 0.25), points=0.25)
    # Integer values: the numerator is exact whatever the order of the operations.
    g = _gen(SEEDS[0])
    values = torch.randint(-50, 50, (100,), generator=g).float()
    ex.compare("random values, dx 0.01", (values, 0.01), points=0.25)
    ex.compare(
        "three points: one interior point", (torch.tensor([1.0, 4.0, 2.0]), 0.1), points=0.25
    )
    g = _gen(SEEDS[1])
    ex.compare(
        "dx = 1",
        (torch.randint(-9, 10, (20,), generator=g).float(), 1.0),
        points=0.25,
        visibility="after_due",
    )
    ex.compare(
        "a linear function has zero second difference",
        (torch.arange(15, dtype=torch.float32) * 3 + 1, 0.5),
        points=0.25,
    )
    g = _gen(SEEDS[2])
    ex.compare(
        "a long grid, dx 0.2",
        (torch.randint(-100, 100, (1000,), generator=g).float() / 8, 0.2),
        points=0.25,
    )
