"""`autograder assignment new SLUG --out DIR`: an assignment folder in the project's format.

One small exercise, complete: its reference, tests in the test DSL (graders/dsl.py), a
starter and a solution notebook, two buggy variants that each lose half of its points
and one correct alternative. It passes `autograder course check DIR` as generated; an
instructor replaces the example with their own exercises, one `[[exercises]]` entry,
one `@suite.exercise` and two variants at a time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from graders.authoring.plan import SLUG, AuthoringError
from graders.notebooks import write_notebook

ASSIGNMENT_TOML = """\
# An assignment of the course: everything about it lives in this folder.
# `autograder course check DIR` grades the solution (full marks), the starter (zero),
# every variants/*.py (must lose points on its own exercise) and alternatives/*.py
# (must get full marks).
title = {title}
slug = {slug}
position = 0
# due_at = "2030-01-31T23:59:00+00:00"

[[exercises]]
# The slug is the name of the function students write (or a class).
slug = "softplus"
kind = "function"
points = 2
# Optional: device = "gpu", memory_mb = 2048, timeout = 20 (seconds per call).
"""

REFERENCE_PY = '''\
"""The reference implementation of {slug} (hidden: only the trusted grader imports it)."""

import torch


def softplus(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """log(1 + exp(beta * x)) / beta, computed without overflow."""
    z = beta * x
    return (torch.clamp(z, min=0) + torch.log1p(torch.exp(-z.abs()))) / beta
'''

TESTS_PY = '''\
"""Hidden tests of {slug}, in the test DSL (graders/dsl.py).

`ex.compare(name, args, points)` calls the reference (here, in the grader) and the
student's function (in the sandbox) on the same inputs and compares the answers: type,
shape and dtype first, then values within rtol=1e-4, atol=1e-5. A test's feedback shows
its inputs only if `visibility="visible"`. `ex.check` and `ex.property` take any check
written against the student's code; see graders/dsl.py.
"""

import torch

from graders.dsl import ExerciseBuilder, Suite

suite = Suite(seeds=[1, 2, 3])


def _inputs(seed: int, shape: tuple[int, ...], scale: float) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


@suite.exercise("softplus")
def _softplus(ex: ExerciseBuilder) -> None:
    ex.compare("example: three small inputs", (torch.tensor([-1.0, 0.0, 1.0]),), points=0.5,
               visibility="visible")
    ex.compare("beta 2", (_inputs(1, (4, 5), 2.0), 2.0), points=0.5)
    ex.compare("large inputs stay finite", (_inputs(2, (16,), 100.0),), points=0.5)
    ex.compare("beta 0.5 on large inputs", (_inputs(3, (3, 7), 200.0), 0.5), points=0.5)
'''

INTRO = """\
# {title}

Implement the function below. Keep its name and signature: the grader calls it with
its own inputs and compares the answers with the course's reference."""

TASK = """\
## `softplus(x, beta=1.0)` (2 points)

Return `log(1 + exp(beta * x)) / beta`, elementwise, as a float32 tensor of the shape of
`x`. It must stay finite for large inputs (`x = 100`): `exp` overflows there."""

STARTER_CODE = '''\
import torch


def softplus(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """log(1 + exp(beta * x)) / beta, computed without overflow."""
    raise NotImplementedError'''

EXAMPLE = "print(softplus(torch.tensor([-1.0, 0.0, 1.0])))  # about [0.3133, 0.6931, 1.3133]"

VARIANTS = {
    "softplus__overflows.py": """\
# Classic mistake: the formula as written; exp(beta * x) overflows to inf for large x.
import torch


def softplus(x, beta=1.0):
    return torch.log(1 + torch.exp(beta * x)) / beta
""",
    "softplus__forgets_beta.py": """\
# Classic mistake: scales the input by beta but forgets to divide the result by it.
import torch


def softplus(x, beta=1.0):
    z = beta * x
    return torch.clamp(z, min=0) + torch.log1p(torch.exp(-z.abs()))
""",
}

ALTERNATIVES = {
    "softplus__torch_builtin.py": """\
# Correct, written differently: PyTorch's own softplus (it returns x itself where
# beta * x > 20, which differs from the exact value by less than the tolerance).
import torch


def softplus(x, beta=1.0):
    return torch.nn.functional.softplus(x, beta=beta)
""",
}

PUBLIC_README = """\
Helper modules that both the students and the sandbox may import go in this folder.
Nothing here is secret: students can read every file of it.
"""


def new_assignment(slug: str, out: Path, force: bool = False) -> Path:
    """Write the scaffold into `out` (which must not exist or be empty, unless `force`)."""
    if not SLUG.match(slug):
        raise AuthoringError(
            f"{slug!r} cannot be an assignment slug (letters, digits, '_', "
            "'-' and '.', starting with a letter or digit)"
        )
    if out.exists() and any(out.iterdir()):
        if not force:
            raise AuthoringError(f"{out} exists and is not empty (--force replaces it)")
        shutil.rmtree(out)
    title = slug.replace("-", " ").replace("_", " ").capitalize()
    values = {"slug": slug, "title": title}
    for sub in ("notebooks", "public", "variants", "alternatives"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "assignment.toml").write_text(
        ASSIGNMENT_TOML.format(title=json.dumps(title), slug=json.dumps(slug))
    )
    (out / "reference.py").write_text(REFERENCE_PY.format(**values))
    (out / "tests.py").write_text(TESTS_PY.format(**values))
    (out / "public" / "README.md").write_text(PUBLIC_README)
    solution_code = REFERENCE_PY.format(**values).split('"""\n\n', 1)[1].strip()
    write_notebook(
        out / "notebooks" / "starter.ipynb",
        [
            ("markdown", INTRO.format(**values)),
            ("markdown", TASK),
            ("code", STARTER_CODE),
            ("code", EXAMPLE),
        ],
    )
    write_notebook(
        out / "notebooks" / "solution.ipynb",
        [
            ("markdown", INTRO.format(**values)),
            ("markdown", TASK),
            ("code", solution_code),
            ("code", EXAMPLE),
        ],
    )
    for name, text in VARIANTS.items():
        (out / "variants" / name).write_text(text)
    for name, text in ALTERNATIVES.items():
        (out / "alternatives" / name).write_text(text)
    return out
