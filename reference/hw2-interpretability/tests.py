"""Hidden tests of hw2."""

from typing import Any

import torch
import torch.nn.functional as F
from hw2_helpers import random_state

from graders.compare import Verdict, compare, detached_verdict
from graders.dsl import ExerciseBuilder, Suite, TestCase, Visibility, build_trusted, describe_inputs
from graders.student import HelperSpec, Student

SEEDS = [21, 22, 23]
suite = Suite(seeds=SEEDS)
CNN = "hw2_helpers:SmallCNN"


def _model(seed: int, state: dict[str, torch.Tensor] | None = None) -> HelperSpec:
    return HelperSpec(CNN, state=state if state is not None else random_state(seed))


def _images(seed: int, n: int, saturated: bool = False) -> torch.Tensor:
    """Images in [0, 1]; saturated ones have about a third of their pixels at exactly 0 or 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g)
    return (1.5 * x - 0.25).clamp(0.0, 1.0) if saturated else x


def _labels(seed: int, n: int, classes: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    return torch.randint(0, classes, (n,), generator=g)


def _dead_class_state(seed: int, dead: int) -> dict[str, torch.Tensor]:
    """Weights for which class `dead` has a non-positive gradient w.r.t. features.4 everywhere.

    classifier.1 has non-negative weights and classifier.4's row `dead` non-positive
    ones, so d logit_dead / d A <= 0 for A = features.4 (>= 0): its grad-CAM map is 0.
    """
    state = random_state(seed)
    state["classifier.1.weight"] = state["classifier.1.weight"].abs()
    row = state["classifier.4.weight"][dead].abs()
    state["classifier.4.weight"][dead] = -row
    return state


# -- fgsm ---------------------------------------------------------------------------------
# sign(grad) is discontinuous at 0: a pixel whose gradient is within float rounding of
# zero may legitimately come out as x, x + eps or x - eps (clamped) in a correct answer.
UNSURE_REL = 1e-5


def _fgsm_case(
    ex: ExerciseBuilder,
    name: str,
    spec: HelperSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    points: float,
    visibility: Visibility = "hidden",
) -> None:
    args = (spec, x, y, eps)
    cache: dict[str, Any] = {}
    detached = ex.detached

    def expected() -> tuple[torch.Tensor, torch.Tensor]:
        if not cache:
            trusted = build_trusted(spec)
            torch.manual_seed(0)
            cache["want"] = ex.reference.fgsm(trusted, x.clone(), y.clone(), eps)
            model = build_trusted(spec)
            xr = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
            scale = grad.abs().flatten(1).amax(dim=1).view(-1, *([1] * (x.dim() - 1)))
            cache["unsure"] = grad.abs() <= UNSURE_REL * scale
        return cache["want"], cache["unsure"]

    def run(student: Student) -> Verdict:
        want, unsure = expected()
        got = student.call("fgsm", *args)
        if student.last_mutated:
            return Verdict(False, "fgsm modified its input in place; it must leave x unchanged")
        if (
            detached
            and isinstance(got, torch.Tensor)
            and got.shape == want.shape
            and got.dtype == want.dtype
        ):
            # Before the rounding fix below, which builds a new tensor from `got`.
            attached = detached_verdict(got)
            if attached is not None:
                return attached
        if (
            isinstance(got, torch.Tensor)
            and got.shape == want.shape
            and got.dtype == want.dtype
            and bool(unsure.any())
        ):
            allowed = torch.zeros_like(unsure)
            for candidate in (x, (x + eps).clamp(0, 1), (x - eps).clamp(0, 1)):
                allowed |= torch.isclose(got, candidate, rtol=1e-4, atol=1e-5)
            got = torch.where(unsure & allowed, want, got)
        verdict = compare(got, want, detached=detached)
        if visibility == "visible" and not verdict.passed:
            verdict.detail = f"call: fgsm({describe_inputs(args, {})})\n" + verdict.detail
        return verdict

    ex.add(
        TestCase(name, points, run, visibility, description=f"fgsm({describe_inputs(args, {})})")
    )


@suite.exercise("fgsm")
def _fgsm(ex: ExerciseBuilder) -> None:
    ex.contract(detached=True)  # docs/course.md: "Returned detached."
    _fgsm_case(
        ex,
        "example: 4 images, eps 0.1",
        _model(0),
        _images(0, 4),
        _labels(0, 4),
        0.1,
        points=0.5,
        visibility="visible",
    )
    s = SEEDS
    _fgsm_case(
        ex,
        "large eps: the result stays in [0, 1]",
        _model(s[0]),
        _images(s[0], 8),
        _labels(s[0], 8),
        0.3,
        points=0.5,
    )
    _fgsm_case(
        ex, "batch of one", _model(s[1]), _images(s[1], 1), _labels(s[1], 1), 0.05, points=0.5
    )
    _fgsm_case(
        ex,
        "saturated images (pixels at 0 and 1)",
        _model(s[2]),
        _images(s[2], 6, saturated=True),
        _labels(s[2], 6),
        0.2,
        points=0.5,
        visibility="after_due",
    )
    _fgsm_case(
        ex,
        "eps 0 leaves the images unchanged",
        _model(s[0] + 1),
        _images(s[0] + 1, 3),
        _labels(s[0] + 1, 3),
        0.0,
        points=0.25,
    )
    _fgsm_case(
        ex,
        "16 images, another model",
        _model(s[1] + 1),
        _images(s[1] + 1, 16),
        _labels(s[1] + 1, 16),
        0.03,
        points=0.75,
    )


# -- grad_cam -----------------------------------------------------------------------------
CAM_ATOL = 1e-4


@suite.exercise("grad_cam")
def _grad_cam(ex: ExerciseBuilder) -> None:
    def case(
        name: str, args: tuple[Any, ...], points: float, visibility: Visibility = "hidden"
    ) -> None:
        ex.compare(name, args, points=points, visibility=visibility, atol=CAM_ATOL)

    s = SEEDS
    case(
        "example: 2 images, layer features.3",
        (_model(0), _images(0, 2), _labels(0, 2), "features.3"),
        0.5,
        "visible",
    )
    case(
        "layer features.0: no upsampling needed",
        (_model(s[0]), _images(s[0] + 14, 4), _labels(s[0] + 14, 4), "features.0"),
        0.5,
    )
    case(
        "layer features.4 (after the ReLU), 6 images",
        (_model(s[1]), _images(s[1] + 10, 6), _labels(s[1] + 10, 6), "features.4"),
        0.5,
    )
    case(
        "batch of one",
        (_model(s[2]), _images(s[2] + 10, 1), _labels(s[2] + 10, 1), "features.3"),
        0.5,
    )
    case(
        "a map that is zero everywhere stays zero (no division by 0)",
        (
            _model(s[0], _dead_class_state(s[0], 9)),
            _images(s[0] + 20, 3),
            torch.tensor([9, 3, 9]),
            "features.4",
        ),
        0.5,
        "after_due",
    )
    case(
        "pooled layer features.2, 8 images",
        (_model(s[1] + 1), _images(s[1] + 20, 8), _labels(s[1] + 20, 8), "features.2"),
        0.5,
    )
    x = _images(s[2] + 20, 5)
    case(
        "each map is normalised by its own maximum",
        (_model(s[2] + 1), x, _labels(s[2] + 20, 5), "features.3"),
        0.5,
    )
    case(
        "the target class matters",
        (_model(s[2] + 1), x, (_labels(s[2] + 20, 5) + 1) % 10, "features.3"),
        0.5,
    )


# -- integrated_gradients -----------------------------------------------------------------
@suite.exercise("integrated_gradients")
def _integrated_gradients(ex: ExerciseBuilder) -> None:
    s = SEEDS
    x = _images(0, 2)
    ex.compare(
        "example: 2 images, black baseline, 8 steps",
        (_model(0), x, _labels(0, 2), torch.zeros_like(x), 8),
        points=0.5,
        visibility="visible",
    )
    x = _images(s[0] + 36, 4)
    ex.compare(
        "noise baseline, 16 steps",
        (_model(s[0]), x, _labels(s[0] + 36, 4), _images(s[0] + 37, 4) * 0.2, 16),
        points=0.5,
    )
    x = _images(s[1] + 30, 3)
    ex.compare(
        "a single step",
        (_model(s[1]), x, _labels(s[1] + 30, 3), torch.zeros_like(x), 1),
        points=0.5,
    )
    x = _images(s[2] + 31, 1)
    ex.compare(
        "batch of one, 32 steps",
        (_model(s[2]), x, _labels(s[2] + 31, 1), torch.full_like(x, 0.5), 32),
        points=0.5,
        visibility="after_due",
    )
    x = _images(s[0] + 47, 3)
    baseline = _images(s[0] + 48, 3)
    baseline[1] = x[1]
    ex.compare(
        "an image equal to its baseline gets zero attribution",
        (_model(s[0] + 1), x, _labels(s[0] + 47, 3), baseline, 5),
        points=0.5,
    )
    x = _images(s[1] + 40, 4, saturated=True)
    ex.compare(
        "saturated images, 10 steps",
        (_model(s[1] + 1), x, _labels(s[1] + 40, 4), torch.zeros_like(x), 10),
        points=0.5,
    )
