"""Model files through the real API and Celery worker, and the leaderboard."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from graders.course import load_assignment
from tests.support.paths import HW1, REFERENCE
from tests.support.stack import Stack, dump

EXERCISE = "digits-classifier"
BOARD = f"/api/v1/courses/dlp/assignments/{HW1}/exercises/{EXERCISE}/leaderboard"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    loaded = load_assignment(REFERENCE / HW1)
    from hw1_helpers import DigitsMLP

    torch.set_num_threads(1)
    trained = loaded.reference.train_digits_mlp(seed=0)
    files: dict[str, bytes] = {"trained.safetensors": save(trained.state_dict())}
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(trained), buffer)
    files["trained.pt"] = buffer.getvalue()
    onnx_path = tmp_path_factory.mktemp("onnx") / "trained.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            trained,
            (torch.zeros(1, 64),),
            str(onnx_path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    files["trained.onnx"] = onnx_path.read_bytes()
    torch.manual_seed(0)
    files["untrained.safetensors"] = save(DigitsMLP().state_dict())
    wrong = {
        "fc1.weight": torch.zeros(100, 64),
        "fc1.bias": torch.zeros(100),
        "head.weight": torch.zeros(10, 100),
        "head.bias": torch.zeros(10),
    }
    files["wrong_head.safetensors"] = save(wrong)
    return files


def exercise(body: dict, slug: str = EXERCISE) -> dict:
    return next(ex for ex in body["exercises"] if ex["slug"] == slug)


def test_trained_model_scores_the_same_in_every_format(
    pg_stack: Stack, model_files: dict[str, bytes]
) -> None:
    scores = {}
    for name in ("trained.safetensors", "trained.pt", "trained.onnx"):
        body = pg_stack.grade("alice", HW1, name, model_files[name])
        assert body["status"] == "graded", dump(body)
        assert [ex["slug"] for ex in body["exercises"]] == [EXERCISE]
        scores[name] = body["score"]
    assert scores["trained.safetensors"] == pytest.approx(5.0)
    assert len({round(s, 6) for s in scores.values()}) == 1, scores


def test_untrained_scores_zero_and_wrong_head_gets_a_report(
    pg_stack: Stack, model_files: dict[str, bytes]
) -> None:
    body = pg_stack.grade("bob", HW1, "untrained.safetensors", model_files["untrained.safetensors"])
    assert body["score"] == 0
    body = pg_stack.grade(
        "bob", HW1, "wrong_head.safetensors", model_files["wrong_head.safetensors"]
    )
    assert body["score"] == 0
    text = " ".join(t["feedback"] for t in exercise(body)["tests"])
    assert "missing: fc2.bias, fc2.weight" in text, dump(body)
    assert "unexpected: head.bias, head.weight" in text
    assert "shape of fc1.weight: got (100, 64), expected (128, 64)" in text


def test_malicious_pickle_is_refused_and_nothing_runs(pg_stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    torch.save({"payload": Evil()}, buffer)
    response = pg_stack.submit("alice", HW1, "model.pt", buffer.getvalue())
    assert response.status_code == 422
    assert "safetensors" in response.json()["detail"]
    assert not marker.exists()


def test_leaderboard_ranks_best_per_student_pseudonymously(
    pg_stack: Stack, model_files: dict[str, bytes]
) -> None:
    # alice: a full-marks model (from the test above or now); bob: only zero-score models.
    pg_stack.grade("alice", HW1, "trained.safetensors", model_files["trained.safetensors"])
    pg_stack.grade("bob", HW1, "untrained.safetensors", model_files["untrained.safetensors"])
    with pg_stack.client("bob") as c:
        board = c.get(BOARD).json()
    rows = board["rows"]
    assert rows[0]["score"] == pytest.approx(5.0)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    names = [r["name"] for r in rows]
    assert "alice" not in names, "students see pseudonyms of others"
    assert len(names) == len(set(names)), "one row per student"
    mine = [r for r in rows if r["you"]]
    assert len(mine) == 1 and mine[0]["name"] == "bob" and mine[0]["score"] == 0
    assert rows[0]["submission_id"] is None
    with pg_stack.client("tina") as c:
        staff_board = c.get(BOARD).json()
    assert staff_board["rows"][0]["name"] == "alice"
    scores = [r["score"] for r in staff_board["rows"]]
    assert scores == sorted(scores, reverse=True)


def test_leaderboard_of_unknown_exercise_is_404(pg_stack: Stack) -> None:
    with pg_stack.client("alice") as c:
        response = c.get(f"/api/v1/courses/dlp/assignments/{HW1}/exercises/nope/leaderboard")
    assert response.status_code == 404
