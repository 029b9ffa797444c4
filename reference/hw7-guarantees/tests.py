"""Hidden tests of hw7."""

from typing import Any

import torch
from hw7_helpers import ScalarMLP, random_state

from graders.compare import Verdict, compare
from graders.dsl import ExerciseBuilder, Suite, Visibility
from graders.student import ModelSpec, Student

SEEDS = [71, 72, 73]
suite = Suite(seeds=SEEDS)
MLP = "hw7_helpers:ScalarMLP"
NTK_RTOL = 1e-3
NTK_ATOL = 1e-4


def _model(seed: int, in_dim: int, hidden: int, depth: int, freeze_first: bool = False,
           bias_scale: float = 0.1) -> ModelSpec:
    kwargs = {"in_dim": in_dim, "hidden": hidden, "depth": depth, "freeze_first": freeze_first}
    state = random_state(ScalarMLP(**kwargs), seed, bias_scale=bias_scale)
    return ModelSpec(MLP, kwargs=kwargs, state=state)


def _points(seed: int, n: int, dim: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * scale


@suite.exercise("empirical_ntk")
def _ntk(ex: ExerciseBuilder) -> None:
    def case(name: str, args: tuple[Any, ...], points: float,
             visibility: Visibility = "hidden") -> None:
        ex.compare(name, args, points=points, visibility=visibility, rtol=NTK_RTOL, atol=NTK_ATOL)

    s = SEEDS
    x = _points(0, 3, 2)
    case("example: 3 points against themselves, one hidden layer",
         (_model(0, 2, 8, 1), x, x), 0.5, "visible")
    case("x1 != x2, 5 x 3 points, two hidden layers",
         (_model(s[0], 4, 16, 2), _points(s[0], 5, 4), _points(s[0] + 1, 3, 4)), 0.5)
    case("a single point on each side",
         (_model(s[1], 3, 12, 2), _points(s[1], 1, 3), _points(s[1] + 1, 1, 3)), 0.5)
    case("frozen first layer: only parameters that require grad count",
         (_model(s[2], 3, 16, 2, freeze_first=True), _points(s[2], 4, 3),
          _points(s[2] + 1, 5, 3)), 0.75)
    case("large inputs (saturated tanh)",
         (_model(s[0] + 1, 2, 16, 2), _points(s[0] + 2, 4, 2, 5.0), _points(s[0] + 3, 2, 2, 5.0)),
         0.5, "after_due")
    x = _points(s[1] + 2, 6, 5)
    case("three hidden layers, x1 = x2", (_model(s[1] + 1, 5, 24, 3), x, x), 0.5)
    case("large biases", (_model(s[2] + 1, 3, 16, 2, bias_scale=2.0), _points(s[2] + 2, 3, 3),
                          _points(s[2] + 3, 4, 3)), 0.5)

    @ex.check("NTK(x2, x1) is the transpose of NTK(x1, x2)", points=0.25)
    def _transpose(student: Student) -> Verdict:
        spec = _model(s[0] + 9, 3, 8, 2)
        x1, x2 = _points(s[0] + 9, 4, 3), _points(s[0] + 10, 2, 3)
        k12 = student.call("empirical_ntk", spec, x1, x2)
        k21 = student.call("empirical_ntk", spec, x2, x1)
        if not isinstance(k12, torch.Tensor) or tuple(k12.shape) != (4, 2):
            return Verdict(False, "empirical_ntk should return a tensor of shape [n1, n2]")
        return compare(k21, k12.T, rtol=NTK_RTOL, atol=NTK_ATOL, path="NTK(x2, x1)")
