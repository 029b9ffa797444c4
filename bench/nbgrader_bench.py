"""nbgrader's autograde against ours, on the same hw1 notebook, in one run.

    .venv/bin/python bench/nbgrader_bench.py            # 8 notebooks each way
    NBGRADER_VENV=/somewhere .venv/bin/python bench/nbgrader_bench.py --notebooks 4

nbgrader lives in a venv of its own, made by this script on first use (default
/tmp/nbgrader-bench-venv: `pip install torch==2.13.0 nbgrader==0.9.6 ipykernel`), never
in the project's .venv. The notebook is hw1's solution up to its model-file section
(whose cells train a network when run as __main__, which nbgrader would do and we do
not); nbgrader gets the same 16 tests as our hidden tests.py (same inputs, compared
with the reference implementation at the same tolerances) as locked autograder cells.

Measured, per notebook (median, min, max):
  nbgrader, one `nbgrader autograde ps1 --student sK` command per notebook (what a
    grading job costs: a CLI start, a fresh kernel that imports torch, the cells);
  nbgrader, all notebooks in one `nbgrader autograde ps1` command (kernel per notebook);
  ours, the worker's grading of one job (worker.grading.run_job, warm zygote sandbox);
  ours, submit-to-graded through the embedded service (`autograder up`, HTTP, warm).
The ratios nbgrader / ours are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import nbformat  # noqa: E402

from core.blobs import get_blob_store  # noqa: E402
from core.job_writes import JobInput  # noqa: E402
from core.settings import get_settings  # noqa: E402
from tests.support.stack import embedded_stack  # noqa: E402
from worker.grading import run_job  # noqa: E402

HW1 = "hw1-training-basics"
VENV = Path(os.environ.get("NBGRADER_VENV", "/tmp/nbgrader-bench-venv"))
PACKAGES = ["torch==2.13.0", "nbgrader==0.9.6", "ipykernel"]

#: hw1's hidden tests (reference/hw1-training-basics/tests.py), as nbgrader cells.
TEST_SETUP = """\
import sys
sys.path.insert(0, {reference!r})
import torch
import reference as _ref

def _logits(seed, n, c, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * scale
    target = torch.randint(0, c, (n,), generator=g)
    return logits, target

def _same(got, want):
    assert isinstance(got, torch.Tensor) and got.dtype == want.dtype, (type(got), want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got, want)

def check_ls(args):
    want = _ref.label_smoothing_ce(*[a.clone() if hasattr(a, "clone") else a for a in args])
    torch.manual_seed(0)
    _same(label_smoothing_ce(*args), want)

def check_es(losses, patience, **kw):
    got = early_stopping_epoch(list(losses), patience, **kw)
    want = _ref.early_stopping_epoch(list(losses), patience, **kw)
    assert type(got) is type(want) and got == want, (got, want)
"""
TESTS = [
    (0.5, "check_ls((*_logits(0, 4, 3, 1.0), 0.1))"),
    (0.5, "check_ls((*_logits(11, 16, 10), 0.0))"),
    (0.5, "check_ls((*_logits(12, 32, 7), 0.3))"),
    (0.5, "check_ls((*_logits(13, 1, 5), 0.2))"),
    (0.5, "check_ls((*_logits(111, 8, 4, scale=200.0), 0.1))"),
    (0.25, "check_ls((*_logits(112, 64, 100), 0.9))"),
    (0.25, "check_ls((*_logits(113, 32, 6, scale=120.0), 0.2))"),
    (0.25, "check_es([1.0, 0.8, 0.9, 0.85, 0.95], 2)"),
    (0.25, "check_es([0.5] * 6, 3)"),
    (0.25, "check_es([5.0, 4.0, 3.0, 2.0, 1.0], 2)"),
    (0.25, "check_es([1.0, 1.0, 1.0, 0.5], 2)"),
    (0.25, "check_es([1.0, 0.95, 0.92, 0.91, 0.5], 3, min_delta=0.1)"),
    (0.125, "check_es([0.5, 0.6, 0.4], 1)"),
    (0.125, "check_es([0.3], 3)"),
    (0.25, "check_es([], 2)"),
    (
        0.25,
        "_g = torch.Generator().manual_seed(13)\n"
        "check_es((torch.linspace(2.0, 0.5, 40) + 0.2 * torch.rand(40, generator=_g))"
        ".tolist(), 4, min_delta=0.01)",
    ),
]


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1e3:6.0f} ms  (min {min(values) * 1e3:.0f}, "
        f"max {max(values) * 1e3:.0f})"
    )


def ensure_venv() -> Path:
    nbgrader = VENV / "bin" / "nbgrader"
    if not nbgrader.exists():
        print(f"creating {VENV} with {' '.join(PACKAGES)} (once)", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", *PACKAGES], check=True)
    return nbgrader


def trimmed_solution() -> bytes:
    """hw1's solution notebook up to (not including) its model-file section."""
    nb = nbformat.reads(
        (ROOT / "reference" / HW1 / "notebooks" / "solution.ipynb").read_text(), as_version=4
    )
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "model file" in cell.source.split("\n")[0]:
            break
        cells.append(cell)
    nb.cells = cells
    return nbformat.writes(nb).encode()


def nbgrader_source(notebook: bytes) -> str:
    nb = nbformat.reads(notebook.decode(), as_version=4)
    setup = nbformat.v4.new_code_cell(TEST_SETUP.format(reference=str(ROOT / "reference" / HW1)))
    setup.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": "test_setup",
        "locked": True,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells.append(setup)
    for i, (points, source) in enumerate(TESTS):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {
            "grade": True,
            "grade_id": f"test_{i:02d}",
            "locked": True,
            "points": points,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nbformat.writes(nb)


def run_nbgrader(nbgrader: Path, notebook: bytes, count: int) -> tuple[list[float], float]:
    course = Path(tempfile.mkdtemp(prefix="nbgrader-course-"))
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'dlp'\n"
        "c.ExecutePreprocessor.timeout = 300\n"
    )
    (course / "source" / "ps1").mkdir(parents=True)
    (course / "source" / "ps1" / "hw1.ipynb").write_text(nbgrader_source(notebook))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"

    def nbg(*args: str) -> float:
        started = time.perf_counter()
        out = subprocess.run(
            [str(nbgrader), *args], cwd=course, env=env, capture_output=True, text=True, timeout=900
        )
        if out.returncode != 0:
            raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return time.perf_counter() - started

    nbg("generate_assignment", "ps1", "--force")
    students = [f"s{k}" for k in range(count)] + [f"b{k}" for k in range(count)]
    for student in students:
        nbg("db", "student", "add", student)
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        shutil.copy(course / "release" / "ps1" / "hw1.ipynb", folder / "hw1.ipynb")
    one_each = [nbg("autograde", "ps1", "--student", s, "--force") for s in students[:count]]
    batch = nbg(
        "autograde",
        "ps1",
        "--force",
        "--CourseDirectory.student_id_exclude=" + ",".join(students[:count]),
    )
    with sqlite3.connect(course / "gradebook.db") as db:
        scores = db.execute(
            "SELECT s.student_id, SUM(g.auto_score) FROM grade g "
            "JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id "
            "GROUP BY s.student_id"
        ).fetchall()
    full = sum(points for points, _ in TESTS)
    assert len(scores) == 2 * count and all(abs(s - full) < 1e-9 for _, s in scores), scores
    shutil.rmtree(course, ignore_errors=True)
    return one_each, batch / count


def run_ours_engine(notebook: bytes, count: int) -> list[float]:
    os.environ["AUTOGRADER_DATA_DIR"] = tempfile.mkdtemp(prefix="nbgrader-bench-ours-")
    get_settings.cache_clear()
    sha = get_blob_store().put_bytes(notebook)
    times = []
    for i in range(count + 2):
        started = time.perf_counter()
        outcomes, _ = run_job(JobInput(HW1, "notebook", sha, None))
        elapsed = time.perf_counter() - started
        score = sum(r.score for r in outcomes)
        assert abs(score - sum(r.max_score for r in outcomes)) < 1e-9
        assert len(outcomes) == len(TESTS)
        if i >= 2:
            times.append(elapsed)
    return times


def run_ours_service(notebook: bytes, count: int) -> list[float]:
    stack = embedded_stack(Path(tempfile.mkdtemp(prefix="nbgrader-bench-up-")))
    try:
        headers = {"Authorization": f"Bearer {stack.tokens['alice']}"}
        url = f"/api/v1/courses/dlp/assignments/{HW1}/submissions"
        times = []
        with httpx.Client(base_url=stack.base_url, timeout=60, headers=headers) as client:
            for i in range(count + 2):
                started = time.perf_counter()
                r = client.post(url, files={"file": ("hw1.ipynb", notebook)})
                assert r.status_code == 202, r.text
                while (body := client.get(f"/api/v1/submissions/{r.json()['id']}").json())[
                    "status"
                ] not in ("graded", "failed"):
                    time.sleep(0.01)
                elapsed = time.perf_counter() - started
                assert body["score"] == body["max_score"], body
                if i >= 2:
                    times.append(elapsed)
        return times
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=int, default=8)
    args = parser.parse_args()
    nbgrader = ensure_venv()
    notebook = trimmed_solution()
    nbg_one, nbg_batch = run_nbgrader(nbgrader, notebook, args.notebooks)
    engine = run_ours_engine(notebook, args.notebooks)
    service = run_ours_service(notebook, args.notebooks)
    print(
        f"hw1 solution notebook (functions part, {len(TESTS)} tests), "
        f"{args.notebooks} notebooks each way, one at a time"
    )
    print(f"  nbgrader autograde, one command per notebook   {summary(nbg_one)}")
    print(
        f"  nbgrader autograde, {args.notebooks} notebooks in one command  "
        f"{nbg_batch * 1e3:6.0f} ms per notebook"
    )
    print(f"  ours, worker grading one job (sandboxed)       {summary(engine)}")
    print(f"  ours, submit-to-graded via the embedded API    {summary(service)}")
    m = statistics.median
    print(
        f"  ratio nbgrader / ours: one command vs one job {m(nbg_one) / m(engine):.1f}x, "
        f"one command vs submit-to-graded {m(nbg_one) / m(service):.1f}x, "
        f"batch vs one job {nbg_batch / m(engine):.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
