"""Hidden tests of hw7."""

from typing import Any

import torch
from hw7_helpers import ScalarMLP, random_state

from graders.dsl import ExerciseBuilder, Probe, Suite, Visibility
from graders.student import HelperSpec

SEEDS = [71, 72, 73]
suite = Suite(seeds=SEEDS)
MLP = "hw7_helpers:ScalarMLP"
NTK_RTOL = 1e-3
NTK_ATOL = 1e-4


def _model(
    seed: int,
    in_dim: int,
    hidden: int,
    depth: int,
    freeze_first: bool = False,
    bias_scale: float = 0.1,
) -> HelperSpec:
    kwargs = {"in_dim": in_dim, "hidden": hidden, "depth": depth, "freeze_first": freeze_first}
    state = random_state(ScalarMLP(**kwargs), seed, bias_scale=bias_scale)
    return HelperSpec(MLP, kwargs=kwargs, state=state)


def _points(seed: int, n: int, dim: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * scale


@suite.exercise("empirical_ntk")
def _ntk(ex: ExerciseBuilder) -> None:
    def case(
        name: str, args: tuple[Any, ...], points: float, visibility: Visibility = "hidden"
    ) -> None:
        ex.compare(name, args, points=points, visibility=visibility, rtol=NTK_RTOL, atol=NTK_ATOL)

    s = SEEDS
    x = _points(0, 3, 2)
    case(
        "example: 3 points against themselves, one hidden layer",
        (_model(0, 2, 8, 1), x, x),
        0.25,
        "visible",
    )
    case(
        "x1 != x2, 5 x 3 points, two hidden layers",
        (_model(s[0], 4, 16, 2), _points(s[0], 5, 4), _points(s[0] + 1, 3, 4)),
        0.25,
    )
    case(
        "a single point on each side",
        (_model(s[1], 3, 12, 2), _points(s[1], 1, 3), _points(s[1] + 1, 1, 3)),
        0.25,
    )
    case(
        "frozen first layer: only parameters that require grad count",
        (_model(s[2], 3, 16, 2, freeze_first=True), _points(s[2], 4, 3), _points(s[2] + 1, 5, 3)),
        0.5,
    )
    x = _points(s[2] + 4, 6, 2)
    case(
        "frozen first layer, one hidden layer, x1 = x2",
        (_model(s[2] + 4, 2, 10, 1, freeze_first=True), x, x),
        0.75,
    )
    case(
        "large inputs (saturated tanh)",
        (_model(s[0] + 1, 2, 16, 2), _points(s[0] + 2, 4, 2, 5.0), _points(s[0] + 3, 2, 2, 5.0)),
        0.25,
        "after_due",
    )
    x = _points(s[1] + 2, 6, 5)
    case("three hidden layers, x1 = x2", (_model(s[1] + 1, 5, 24, 3), x, x), 0.25)
    case(
        "large biases",
        (
            _model(s[2] + 1, 3, 16, 2, bias_scale=2.0),
            _points(s[2] + 2, 3, 3),
            _points(s[2] + 3, 4, 3),
        ),
        0.25,
    )

    # The properties use more points than the compared cases (20 and 16) and hold every
    # kernel to the contract (float32 [n1, n2]) before looking at it.
    spec = _model(s[0] + 9, 3, 8, 2)
    x1, x2 = _points(s[0] + 9, 20, 3), _points(s[0] + 10, 16, 3)

    def ntk(p: Probe, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return p.tensor(
            p.call("empirical_ntk", spec, a, b), (a.shape[0], b.shape[0]), what="the kernel"
        )

    @ex.property("NTK(x2, x1) is the transpose of NTK(x1, x2)", points=0.5)
    def _transpose(p: Probe) -> None:
        k12 = ntk(p, x1, x2)
        k21 = ntk(p, x2, x1)
        p.compare(
            k21,
            k12.T,
            rtol=NTK_RTOL,
            atol=NTK_ATOL,
            path="NTK(x2, x1)",
            hint="it should be the transpose of NTK(x1, x2)",
        )

    @ex.property("NTK(x, x) is symmetric", points=0.25)
    def _symmetric(p: Probe) -> None:
        k = ntk(p, x1, x1)
        p.compare(
            k.T,
            k,
            rtol=NTK_RTOL,
            atol=NTK_ATOL,
            path="NTK(x, x) transposed",
            hint="a kernel of a set with itself is symmetric",
        )

    @ex.property("NTK(x, x) is positive semi-definite", points=0.25)
    def _psd(p: Probe) -> None:
        k = ntk(p, x1, x1).double()
        eigenvalues = torch.linalg.eigvalsh((k + k.T) / 2)
        scale = float(eigenvalues.abs().max()) or 1.0
        negative = int((eigenvalues < -1e-3 * scale).sum())
        if negative:
            raise p.fail(
                f"NTK(x, x) has {negative} clearly negative eigenvalue(s); a sum of "
                "outer products of gradients has none"
            )

    @ex.property("a block of NTK(x1, x2) is the NTK of the sub-batches", points=0.25)
    def _block(p: Probe) -> None:
        k = ntk(p, x1, x2)
        block = ntk(p, x1[3:8], x2[:4])
        p.compare(
            block,
            k[3:8, :4],
            rtol=NTK_RTOL,
            atol=NTK_ATOL,
            path="NTK(x1[3:8], x2[:4])",
            hint="each entry depends only on its own pair of points",
        )
