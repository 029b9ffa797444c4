"""Model exercises end to end in the grading engine: hw1's `digits-classifier`.

Each test writes a model file into a folder of its own, runs intake on it and grades
it with graders.runner.grade in a real sandbox whose submission folder is that folder,
as the worker does.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from graders.course import LoadedAssignment, load_assignment
from graders.intake import detect_kind
from graders.intake_limits import IntakeError
from graders.runner import GradeLimits, GradeReport, grade
from tests.support.paths import HW1_DIR
from worker.sandbox.launcher import sandbox_factory
from worker.sandbox.model_loading import _prefix_hint, state_dict_problems

EXERCISE = "digits-classifier"
POINTS = 5.0

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")
#: The fast tier (`make test-fast`) leaves out the tests whose subject is the sandbox's
#: limits (a forward that never returns, one that allocates without bound).
fast = pytest.mark.fast


@pytest.fixture(scope="module")
def loaded() -> LoadedAssignment:
    return load_assignment(HW1_DIR)


@pytest.fixture(scope="module")
def trained(loaded: LoadedAssignment) -> nn.Module:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return loaded.reference.train_digits_mlp(seed=0)
    finally:
        torch.set_num_threads(threads)


def digits_mlp() -> type[nn.Module]:
    from hw1_helpers import DigitsMLP  # on sys.path once the assignment is loaded

    return DigitsMLP


def grade_file(
    loaded: LoadedAssignment, path: Path, limits: GradeLimits | None = None
) -> GradeReport:
    data = path.read_bytes()
    kind = detect_kind(path.name, data)
    path.chmod(0o644)  # as the worker writes it: readable by the sandbox's own uid
    path.parent.chmod(0o755)
    factory = sandbox_factory(public_dirs=(loaded.meta.public_dir,), submission_dir=path.parent)
    return grade(loaded, kind, data, factory, limits=limits, model_path=path.name)


def model_file(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir(exist_ok=True)
    return folder / name


def export_onnx(model: nn.Module, path: Path, dynamic: bool = True) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 64),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None,
        )


def accuracy_line(report: GradeReport) -> str:
    test = next(t for t in report.tests if t.name == "held-out accuracy")
    return test.feedback.splitlines()[0]


def feedback(report: GradeReport) -> str:
    return "\n".join(t.feedback for t in report.tests)


# -- a good model scores the same in every format ---------------------------------------


@fast
def test_trained_model_scores_high_and_the_same_in_every_format(
    loaded: LoadedAssignment, trained: nn.Module, tmp_path: Path
) -> None:
    files = {
        "safetensors": model_file(tmp_path, "digits.safetensors"),
        "torchscript": model_file(tmp_path, "digits.pt"),
        "onnx": model_file(tmp_path, "digits.onnx"),
    }
    save_file(trained.state_dict(), str(files["safetensors"]))
    torch.jit.script(trained).save(str(files["torchscript"]))
    export_onnx(trained, files["onnx"])

    reports = {fmt: grade_file(loaded, path) for fmt, path in files.items()}
    for fmt, report in reports.items():
        assert report.exercises == [EXERCISE], fmt
        assert [t.name for t in report.tests] == [
            "loads and returns [N, 10] float32 logits",
            "held-out accuracy",
        ]
        assert report.max_score == POINTS
        assert report.score == pytest.approx(POINTS), (fmt, feedback(report))
        assert all(t.outcome == "passed" for t in report.tests), (fmt, feedback(report))
        assert "confusion matrix" in feedback(report)
        assert re.search(r"inference on 539 digits took \d+ ms", feedback(report))
    lines = {fmt: accuracy_line(r) for fmt, r in reports.items()}
    assert len(set(lines.values())) == 1, lines  # the same accuracy, to the 4th decimal
    accuracy = float(re.search(r"accuracy (\d\.\d+)", lines["onnx"]).group(1))
    assert accuracy >= 0.92  # the scale's top, on the perturbed held-out digits


@fast
def test_onnx_with_a_fixed_batch_size_still_answers_any_batch(
    loaded: LoadedAssignment, trained: nn.Module, tmp_path: Path
) -> None:
    path = model_file(tmp_path, "fixed.onnx")
    export_onnx(trained, path, dynamic=False)  # exported with batch 1, no dynamic axis
    report = grade_file(loaded, path)
    assert report.score == pytest.approx(POINTS), feedback(report)


@fast
def test_partial_credit_follows_the_course_rule(
    loaded: LoadedAssignment, trained: nn.Module, tmp_path: Path
) -> None:
    # 12 epochs of the reference recipe: between 0.80 and 0.92 on the perturbed digits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        weak = loaded.reference.train_digits_mlp(seed=0, epochs=12)
    finally:
        torch.set_num_threads(threads)
    path = model_file(tmp_path, "weak.safetensors")
    save_file(weak.state_dict(), str(path))
    report = grade_file(loaded, path)
    accuracy = float(re.search(r"accuracy (\d\.\d+)", accuracy_line(report)).group(1))
    assert 0.80 < accuracy < 0.92
    expected = POINTS * (accuracy - 0.80) / 0.12
    assert report.score == pytest.approx(expected, abs=POINTS * 1e-4 / 0.12)


# -- bad models: zero points, and the feedback says why ----------------------------------


@fast
def test_untrained_model_scores_zero(loaded: LoadedAssignment, tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = model_file(tmp_path, "untrained.safetensors")
    save_file(digits_mlp()().state_dict(), str(path))
    report = grade_file(loaded, path)
    assert report.score == 0.0
    outcomes = {t.name: t.outcome for t in report.tests}
    assert outcomes["loads and returns [N, 10] float32 logits"] == "passed"
    assert outcomes["held-out accuracy"] == "failed"
    assert "per-class accuracy" in feedback(report)


class WrongHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 100)
        self.head = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc1(x)))


@fast
def test_wrong_head_gets_a_readable_key_and_shape_report(
    loaded: LoadedAssignment, tmp_path: Path
) -> None:
    path = model_file(tmp_path, "wrong.safetensors")
    save_file(WrongHead().state_dict(), str(path))
    report = grade_file(loaded, path)
    assert report.score == 0.0
    assert {t.outcome for t in report.tests} == {"error"}
    text = report.tests[0].feedback
    assert text.startswith("the model could not be loaded")
    assert (
        "missing: fc2.bias, fc2.weight; unexpected: head.bias, head.weight; "
        "shape of fc1.weight: got (100, 64), expected (128, 64); "
        "shape of fc1.bias: got (100,), expected (128,)"
    ) in text
    assert "Traceback" not in text


@fast
def test_state_dict_report_lists_every_difference_and_spots_a_wrapper_prefix() -> None:
    expected = {"fc1.weight": torch.zeros(128, 64), "fc2.bias": torch.zeros(10)}
    got = {"fc1.weight": torch.zeros(100, 64), "head.weight": torch.zeros(10, 100)}
    assert state_dict_problems(got, expected) == [
        "missing: fc2.bias",
        "unexpected: head.weight",
        "shape of fc1.weight: got (100, 64), expected (128, 64)",
    ]
    assert state_dict_problems(expected, expected) == []
    wrapped = {f"module.{k}": v for k, v in expected.items()}
    assert "prefix 'module.'" in _prefix_hint(wrapped, expected)


class ReturnsColumn(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


class ReturnsTuple(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, :10], x[:, 10:20]


class ReturnsClasses(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :10].argmax(dim=1)


@pytest.mark.parametrize(
    ("module", "says"),
    [
        (ReturnsColumn, "the model returned shape (539, 1) for 539 inputs; expected (539, 10)"),
        (ReturnsTuple, "the model returned a tuple of 2 tensors"),
        (ReturnsClasses, "it looks like class predictions"),
    ],
)
@fast
def test_wrong_output_gets_zero_and_says_what_is_wrong(
    loaded: LoadedAssignment, tmp_path: Path, module: type[nn.Module], says: str
) -> None:
    path = model_file(tmp_path, "odd.pt")
    torch.jit.script(module()).save(str(path))
    report = grade_file(loaded, path)
    assert report.score == 0.0
    assert {t.outcome for t in report.tests} == {"failed"}
    assert says in report.tests[0].feedback
    assert "no accuracy can be computed" in report.tests[1].feedback


# -- pickles are never loaded ------------------------------------------------------------


class Evil:
    """Unpickling this creates the marker file: proof that the pickle ran."""

    marker = ""

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def evil_pickle(marker: Path) -> bytes:
    evil = Evil()
    evil.marker = str(marker)
    buffer = io.BytesIO()
    torch.save({"fc1.weight": torch.zeros(128, 64), "payload": evil}, buffer)
    return buffer.getvalue()


@fast
@pytest.mark.parametrize(
    "name", ["model.pt", "model.pth", "model.safetensors", "model.onnx", "model.ts"]
)
def test_a_pickle_is_refused_by_intake_and_nothing_runs(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    data = evil_pickle(marker)
    with pytest.raises(IntakeError) as refused:
        detect_kind(name, data)
    assert not marker.exists()
    if name.endswith((".pt", ".pth", ".ts")):
        assert "pickle" in str(refused.value) and "safetensors" in str(refused.value)


@fast
def test_a_pickle_dressed_as_torchscript_is_not_unpickled_in_the_sandbox(
    loaded: LoadedAssignment, tmp_path: Path
) -> None:
    """Intake takes a zip with code/ for TorchScript; torch.jit.load must not run the pickle."""
    marker = tmp_path / "pwned"
    source = zipfile.ZipFile(io.BytesIO(evil_pickle(marker)))
    prefix = source.namelist()[0].split("/")[0]
    path = model_file(tmp_path, "disguised.pt")
    with zipfile.ZipFile(path, "w") as archive:
        for entry in source.namelist():
            archive.writestr(entry, source.read(entry))
        archive.writestr(f"{prefix}/constants.pkl", source.read(f"{prefix}/data.pkl"))
        archive.writestr(f"{prefix}/code/__torch__/model.py", "")
    assert detect_kind(path.name, path.read_bytes()) == "torchscript"
    report = grade_file(loaded, path)
    assert report.score == 0.0
    assert {t.outcome for t in report.tests} == {"error"}
    assert not marker.exists()


# -- runaway models: the call's deadline and the memory limit ---------------------------


class Forever(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        while i >= 0:
            x = x + 1.0
            i += 1
        return x


class Hungry(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.size = 1 << 26  # 256 MiB of float32 per chunk, touched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks: list[torch.Tensor] = []
        while len(chunks) >= 0:
            chunks.append(torch.ones(self.size))
        return x


def test_a_forward_that_never_returns_times_out(loaded: LoadedAssignment, tmp_path: Path) -> None:
    path = model_file(tmp_path, "forever.pt")
    torch.jit.script(Forever()).save(str(path))
    spec = loaded.exercises["digits-classifier"]
    declared, spec.timeout = spec.timeout, None  # the 2 s service default, not the 20 s asked
    try:
        report = grade_file(loaded, path, GradeLimits(call_timeout=2.0, job_timeout=90.0))
    finally:
        spec.timeout = declared
    assert report.score == 0.0
    first, second = report.tests
    assert first.outcome == "timeout"
    assert "no answer within 2 s" in first.feedback
    assert second.outcome == "timeout" and second.feedback.startswith("not run")


def test_a_forward_that_allocates_without_bound_is_stopped(
    loaded: LoadedAssignment, tmp_path: Path
) -> None:
    path = model_file(tmp_path, "hungry.pt")
    torch.jit.script(Hungry()).save(str(path))
    report = grade_file(loaded, path, GradeLimits(call_timeout=30.0, job_timeout=120.0))
    assert report.score == 0.0
    assert report.tests[0].outcome in ("oom", "error")
    assert report.tests[0].outcome == "oom", report.tests[0].feedback
    assert "out of memory" in report.tests[0].feedback
