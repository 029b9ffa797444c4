"""Grades that hold wherever the course contract (docs/course.md) speaks.

- detachment: a result the contract says is detached (hw2 `fgsm`) that is still attached
  to an autograd graph fails, end to end: the flag crosses the sandbox's wire;
- dtype and shape in property tests: a float64 result fails each property test, with a
  sentence naming the property and the inputs' shapes and dtypes, never their values;
- exact Python types: `(26.0, 26.0)` is not a tuple of ints, a bool is not an int;
- the digits evaluation set is not public data: a lookup table of all 1,797 public
  digits scores clearly below full marks (the trained DigitsMLP's full marks in every
  format are in tests/test_models.py);
- the course check flags a buggy variant that loses less than a quarter of its
  exercise's points as a weak test.

The end-to-end tests grade the solution notebook plus one variant cell in a real
sandbox, as the worker does.
"""

from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

from graders.compare import compare, detached_verdict, is_attached
from graders.course import import_file, load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import with_extra_cell
from graders.outcome import TestOutcome as Outcome
from graders.runner import GradeReport, grade
from graders.selfcheck import check_assignment
from graders.selfcheck_models import grade_model_file
from graders.selfcheck_report import format_table
from protocol.codec import decode, encode
from protocol.limits import REPLY_LIMITS
from tests.support.paths import REFERENCE
from worker.sandbox.launcher import sandbox_provider

pytestmark = [
    pytest.mark.fast,
    pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning"),
]


def grade_with(assignment: str, variant_source: str | None) -> GradeReport:
    folder = REFERENCE / assignment
    loaded = load_assignment(folder)
    solution = (folder / "notebooks" / "solution.ipynb").read_bytes()
    data = solution if variant_source is None else with_extra_cell(solution, variant_source)
    return grade(loaded, NOTEBOOK, data, sandbox_provider((loaded.meta.public_dir,), None))


def variant(assignment: str, name: str) -> str:
    return (REFERENCE / assignment / "variants" / f"{name}.py").read_text()


def lost(report: GradeReport) -> list[Outcome]:
    return [t for t in report.tests if t.score + 1e-9 < t.max_score]


# -- comparison units: exact types and detachment ----------------------------------------


def test_whole_number_floats_are_not_ints_and_bools_are_not_ints() -> None:
    for exact in (False, True):
        verdict = compare((26.0, 26.0), (26, 26), exact_types=exact)
        assert not verdict.passed
        assert "element 0 of the result should be" in verdict.message
        assert "got float" in verdict.message and "26.0 is not an int" in verdict.message
        assert not compare(True, 1, exact_types=exact).passed
        assert "a bool is not an int" in compare(True, 1, exact_types=exact).message
        assert not compare(1, True, exact_types=exact).passed
    assert compare((26, 26), (26, 26), exact_types=True).passed
    # The contract's "Python int": an integer tensor passes only where it does not say so.
    assert compare(torch.tensor(3), 3).passed
    verdict = compare(torch.tensor(3), 3, exact_types=True)
    assert not verdict.passed and "should be a Python int" in verdict.message


def test_an_attached_result_fails_only_where_the_contract_says_detached() -> None:
    leaf = torch.rand(3, requires_grad=True)
    attached = (leaf * 2).clamp(0, 1)
    expected = attached.detach().clone()
    assert is_attached(attached) and is_attached(leaf) and not is_attached(expected)
    assert compare(attached, expected).passed  # no word on it in the contract: fine
    verdict = compare(attached, expected, detached=True)
    assert not verdict.passed
    assert "still attached to the autograd graph" in verdict.message
    assert compare(attached.detach(), expected, detached=True).passed
    # Inside a tuple too, and after shape and dtype: a wrong shape says so first.
    assert (
        "element 1 of the result"
        in compare((expected, attached), (expected, expected), detached=True).message
    )
    assert "shape" in compare(attached[:2], expected, detached=True).message
    # A tensor decoded from the sandbox carries the protocol's flag.
    decoded = decode(encode(expected.clone().requires_grad_(True) * 1), REPLY_LIMITS)
    assert not decoded.requires_grad
    assert is_attached(decoded) and detached_verdict(decoded) is not None


# -- end to end: each new check has a variant that fails only it -------------------------

#: (assignment, variant, exercise, the tests that must fail, a sentence each must hold)
ONLY_THE_NEW_CHECK = [
    (
        "hw2-interpretability",
        "fgsm__attached_result",
        "fgsm",
        None,
        "still attached to the autograd graph",
    ),
    (
        "hw3-architectures",
        "conv2d_output_shape__numpy_floor",
        "conv2d_output_shape",
        None,
        "should be a Python int, got float",
    ),
    (
        "hw3-architectures",
        "gcn_layer__float64_large_graphs",
        "gcn_layer",
        ["permutation equivariance: permuting the nodes permutes the output"],
        "has dtype torch.float64, expected torch.float32",
    ),
    (
        "hw4-small-data",
        "sinkhorn__float64_large_problems",
        "sinkhorn",
        [
            "the plan's columns sum to b (after the v update)",
            "once converged, the plan's rows sum to a",
        ],
        "the plan has dtype torch.float64, expected torch.float32",
    ),
    (
        "hw4-small-data",
        "DeepSet__float64_model",
        "DeepSet",
        None,
        "forward's output has dtype torch.float64, expected torch.float32",
    ),
    (
        "hw6-generative",
        "affine_coupling__inverse_float64_large_batches",
        "affine_coupling",
        ["inverse(forward(x)) gives x back", "forward(inverse(y)) gives y back"],
        "affine_coupling_inverse's result has dtype torch.float64, expected torch.float32",
    ),
    (
        "hw7-guarantees",
        "empirical_ntk__float64_many_points",
        "empirical_ntk",
        [
            "NTK(x2, x1) is the transpose of NTK(x1, x2)",
            "NTK(x, x) is symmetric",
            "NTK(x, x) is positive semi-definite",
            "a block of NTK(x1, x2) is the NTK of the sub-batches",
        ],
        "the kernel has dtype torch.float64, expected torch.float32",
    ),
]


@pytest.mark.parametrize(
    ("assignment", "name", "exercise", "failing", "says"),
    ONLY_THE_NEW_CHECK,
    ids=[row[1] for row in ONLY_THE_NEW_CHECK],
)
def test_a_variant_caught_only_by_a_new_check_loses_points_there_alone(
    assignment: str, name: str, exercise: str, failing: list[str] | None, says: str
) -> None:
    report = grade_with(assignment, variant(assignment, name))
    points = load_assignment(REFERENCE / assignment).exercises[exercise].points
    bad = lost(report)
    assert bad and {t.exercise for t in bad} == {exercise}, [(t.exercise, t.name) for t in bad]
    if failing is None:  # every test of the exercise, each for that one reason
        failing = [t.name for t in report.tests if t.exercise == exercise]
    assert sorted(t.name for t in bad) == sorted(failing)
    for test in bad:
        assert test.outcome == "failed" and says in test.feedback, test.feedback
    assert sum(t.max_score - t.score for t in bad) >= points / 4 - 1e-9  # not a weak test


def test_a_failed_property_names_the_property_and_the_inputs_shapes_never_values() -> None:
    report = grade_with(
        "hw7-guarantees", variant("hw7-guarantees", "empirical_ntk__float64_many_points")
    )
    test = next(t for t in report.tests if t.name.startswith("NTK(x2, x1)"))
    assert test.visibility == "hidden"
    assert test.feedback.startswith(
        'property "NTK(x2, x1) is the transpose of NTK(x1, x2)" does not hold on '
        "empirical_ntk(a ScalarMLP model, a float32 tensor of shape (20, 3), "
        "a float32 tensor of shape (16, 3)): the kernel has dtype torch.float64"
    ), test.feedback
    # Only sizes and dtypes: no decimal number (an input or a kernel value) in sight.
    assert not re.search(r"\d\.\d", test.feedback), test.feedback

    # A property that fails on its values says where it fails by size, not by value.
    report = grade_with("hw4-small-data", variant("hw4-small-data", "sinkhorn__v_first"))
    columns = next(
        t for t in report.tests if t.name == "the plan's columns sum to b (after the v update)"
    )
    assert columns.outcome == "failed"
    assert columns.feedback.startswith(
        'property "the plan\'s columns sum to b (after the v update)" does not hold on '
        "sinkhorn(a float32 tensor of shape (40,), a float32 tensor of shape (50,), "
        "a float32 tensor of shape (40, 50), a Python float, a Python int): "
        "the column sums of the plan: "
    ), columns.feedback
    assert "after the last v update the columns must sum to b" in columns.feedback


def test_the_solutions_still_get_full_marks_with_the_new_checks() -> None:
    for assignment in ("hw2-interpretability", "hw3-architectures", "hw7-guarantees"):
        report = grade_with(assignment, None)
        assert not lost(report), [(t.name, t.feedback) for t in lost(report)]


# -- digits: the evaluation set is not public data ---------------------------------------


def hw1_tests() -> types.ModuleType:
    """hw1's hidden tests module, as the course loader imported it."""
    loaded = load_assignment(REFERENCE / "hw1-training-basics")
    key = loaded.meta.slug.replace("-", "_") + "_" + loaded.meta.version
    return sys.modules[f"_dlp_tests_{key}"]


def test_the_evaluation_digits_are_a_secret_perturbation_of_the_held_out_split() -> None:
    folder = REFERENCE / "hw1-training-basics"
    tests = hw1_tests()
    from hw1_helpers import load_digits_arrays, perturb_digits

    inputs, labels = tests.held_out()
    originals, same_labels = tests.held_out_originals()
    assert inputs.shape == originals.shape == (539, 64) and inputs.dtype == torch.float32
    assert torch.equal(labels, same_labels)
    assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0
    # No evaluation image is one of scikit-learn's images.
    public, _ = load_digits_arrays()
    nearest = torch.cdist(inputs, torch.from_numpy(public)).min(dim=1).values
    assert float(nearest.min()) > 0.1
    # Deterministic from the seed, which lives in the hidden tests only.
    again = perturb_digits(originals, torch.Generator().manual_seed(tests.PERTURBATION_SEED))
    assert torch.equal(again, inputs)
    for path in (folder / "public").rglob("*"):
        if path.is_file() and path.suffix == ".py":
            text = path.read_text()
            assert "PERTURBATION_SEED" not in text
            assert hex(tests.PERTURBATION_SEED)[2:].lower() not in text.lower().replace("_", "")
    for notebook in ("starter", "solution"):
        text = (folder / "notebooks" / f"{notebook}.ipynb").read_text()
        assert "perturbed" in text and "secret seed" in text and "perturb_digits" in text


def test_a_lookup_table_of_the_public_digits_scores_clearly_below_full_marks(
    tmp_path: Path,
) -> None:
    loaded = load_assignment(REFERENCE / "hw1-training-basics")  # puts public/ on the path
    folder = REFERENCE / "hw1-training-basics"
    table = import_file("_hw1_model_samples_for_test", folder / "model_samples.py").lookup_table()

    # It is a perfect memoriser: every unperturbed held-out image gets its label.
    tests = hw1_tests()
    originals, labels = tests.held_out_originals()
    with torch.no_grad():
        assert bool((table(originals).argmax(dim=1) == labels).all())

    submission = tmp_path / "submission"
    submission.mkdir()
    path = submission / "lookup.pt"
    torch.jit.script(table).save(str(path))
    report = grade_model_file(loaded, path, sandbox_provider, "digits-classifier")
    accuracy = float(re.search(r"accuracy (\d\.\d+)", report.tests[1].feedback).group(1))
    assert accuracy < 0.85, report.tests[1].feedback
    assert report.score <= 0.5 * 5.0, [t.feedback[:200] for t in report.tests]
    assert report.max_score == 5.0


# -- the course check: points lost per variant, weak tests flagged ------------------------


def test_the_course_check_reports_points_lost_and_flags_a_weak_variant(tmp_path: Path) -> None:
    folder = tmp_path / "hw3-architectures"
    shutil.copytree(
        REFERENCE / "hw3-architectures", folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    (folder / "variants" / "conv2d_output_shape__wrong_for_stride_3.py").write_text(
        "# Wrong for one small case only: loses 0.125 of 2 points.\n"
        "def conv2d_output_shape(h, w, kernel, stride=1, padding=0, dilation=1):\n"
        "    def pair(v):\n"
        "        return (v, v) if isinstance(v, int) else tuple(v)\n"
        "    k, s, p, d = pair(kernel), pair(stride), pair(padding), pair(dilation)\n"
        "    if s == (3, 3):\n"
        "        return (0, 0)\n"
        "    return tuple((n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1\n"
        "                 for i, n in enumerate((h, w)))\n"
    )
    result = check_assignment(folder, sandbox_provider)
    rows = {r.variant: r for r in result.rows}
    weak = rows["variant conv2d_output_shape__wrong_for_stride_3"]
    assert (weak.lost, weak.exercise_points) == (0.125, 2.0)
    assert weak.weak and not weak.ok and "weak test" in weak.problem
    assert result.weak == [weak] and not result.ok
    strong = rows["variant conv2d_output_shape__numpy_floor"]
    assert strong.ok and not strong.weak and strong.lost == 2.0
    table = format_table(result)
    assert "0.125 of 2 WEAK" in table and "lost on its exercise" in table
