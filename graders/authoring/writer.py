"""Writing an import plan as an assignment folder in the project's own format."""

from __future__ import annotations

import json
from pathlib import Path

from graders.authoring.plan import ImportPlan, PlannedExercise, PlannedTest
from graders.authoring.source import notebook_text

TOOL_NAMES = {"nbgrader": "nbgrader source notebook", "otter": "Otter Assign (v1) master notebook"}

VARIANTS_README = """\
Buggy variants of this assignment's exercises (none yet).

`autograder assignment import` cannot write them: only you know your students' classic
mistakes. The self-check (`autograder course check DIR`) grades each file here as the
solution notebook plus that file as one more cell, and expects it to lose at least a
quarter of its exercise's points, and nothing elsewhere. For an imported assignment a
missing variant is only a warning; every other assignment needs at least two per exercise.

Name each file `<exercise>__<what>.py` and put in it only the definition(s) it changes,
for example `{example}__forgets_the_mean.py`:

    def some_function(x):
        return x.sum()          # the classic mistake: sum where the mean was asked

Exercises here: {exercises}.
"""

PUBLIC_README = """\
Helper modules that both the students and the sandbox may import go in this folder.
Nothing here is secret: students can read every file of it.
"""


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    return json.dumps(str(value), ensure_ascii=False)


def _lines(text: str) -> str:
    """A string literal of `text`, one line of the text per line of code."""
    parts = [json.dumps(line, ensure_ascii=False) for line in text.splitlines(keepends=True)]
    if not parts:
        return '""'
    return "(\n" + "".join(f"            {p}\n" for p in parts) + "        )"


def assignment_toml(plan: ImportPlan, slug: str, source_name: str) -> str:
    out = [
        f"# Imported from the {TOOL_NAMES[plan.fmt]} {source_name!r} by",
        "# `autograder assignment import`. Edit freely; `autograder course check` checks it.",
        f"title = {_toml(plan.title)}",
        f"slug = {_toml(slug)}",
        "position = 0",
        f"imported_from = {_toml(plan.fmt)}",
        f"source = {_toml(source_name)}",
        "",
    ]
    for exercise in plan.exercises:
        out += [
            "[[exercises]]",
            f"# {exercise.origin}",
            f"slug = {_toml(exercise.slug)}",
            f"kind = {_toml(exercise.kind)}",
            f"points = {_toml(exercise.points)}",
            "",
        ]
        if exercise.kind == "manual":
            # A manual exercise is graded with a rubric; neither tool has one to import,
            # so one item worth all the points, for the instructor to split into parts.
            out += [
                "[[exercises.rubric.items]]",
                'id = "complete"',
                f"points = {_toml(exercise.points)}",
                'description = "Correct and complete (imported: split this rubric into '
                'the parts you grade)."',
                "",
            ]
    return "\n".join(out)


def reference_py(plan: ImportPlan, slug: str, source_name: str) -> str:
    header = [
        f'"""The solution of {slug}: the code cells of {source_name!r} with their solutions.',
        "",
        "Imported by `autograder assignment import`. Hidden: only the trusted grader reads it.",
        "Each `# %% [setup]` or `# %% [solution]` line starts one cell, in notebook order;",
        "tests.py replays them. Setup cells run in the grader on both sides; on the student's",
        "side a solution cell's names come from the student's sandbox instead.",
        '"""',
    ]
    if any("display(" in c.source for c in plan.ref_cells):
        header += [
            "",
            "",
            "def display(*objects, **kwargs):",
            '    """IPython\'s display(), which shows nothing in the grader."""',
        ]
    body = [
        f"\n\n# %% [{cell.kind}] {cell.label}\n{cell.source.rstrip()}" for cell in plan.ref_cells
    ]
    return "\n".join(header) + "".join(body) + "\n"


def _test_call(test: PlannedTest, per_assert: bool) -> str:
    args = [
        f"        {json.dumps(test.name, ensure_ascii=False)},",
        f"        points={test.points!r},",
        f"        position={test.position},",
        f"        style={test.style!r},",
        f"        visibility={test.visibility!r},",
    ]
    if test.hidden_lines:
        args.append(f"        hidden_lines={test.hidden_lines!r},")
    if per_assert and test.style == "assert":
        args.append("        per_assert=True,")
    if test.failure_message:
        args.append(f"        failure_message={json.dumps(test.failure_message)},")
    args.append(f"        source={_lines(test.source)},")
    return "    ex.imported(\n" + "\n".join(args) + "\n    )\n"


def _exercise_block(index: int, exercise: PlannedExercise, per_assert: bool) -> str:
    head = (
        f"\n\n# {exercise.origin}: {exercise.points:g} points\n"
        f"@suite.exercise({exercise.slug!r}, requires={exercise.requires!r})\n"
        f"def _exercise_{index}(ex: ExerciseBuilder) -> None:\n"
    )
    return head + "\n".join(_test_call(t, per_assert) for t in exercise.tests)


def tests_py(plan: ImportPlan, slug: str, source_name: str) -> str:
    how = (
        "all or nothing per test cell, as nbgrader scores them"
        if plan.fmt == "nbgrader" and not plan.per_assert
        else "an equal share per top-level assert"
        if plan.fmt == "nbgrader"
        else "each question's points split over its test cases as Otter resolves them"
    )
    text = (
        f'"""Hidden tests of {slug}, imported from {source_name!r} ({plan.fmt}).\n\n'
        "Each test is the notebook's own test code. It runs in the trusted grader on the\n"
        "namespace reference.py's cells give at its position, where the student's names\n"
        "are proxies into the sandbox (graders/authoring): the student's code answers\n"
        f'calls with data, the grader decides. Points: {how}.\n"""\n\n'
        "from graders.dsl import ExerciseBuilder, Suite\n\nsuite = Suite()\n"
    )
    autograded = [e for e in plan.exercises if e.kind == "function"]
    for index, exercise in enumerate(autograded, 1):
        text += _exercise_block(index, exercise, plan.per_assert)
    return text


def write_folder(plan: ImportPlan, folder: Path, slug: str, source_name: str) -> None:
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    (folder / "public").mkdir(exist_ok=True)
    (folder / "variants").mkdir(exist_ok=True)
    (folder / "assignment.toml").write_text(assignment_toml(plan, slug, source_name))
    (folder / "reference.py").write_text(reference_py(plan, slug, source_name))
    (folder / "tests.py").write_text(tests_py(plan, slug, source_name))
    (folder / "notebooks" / "starter.ipynb").write_text(notebook_text(plan.starter, plan.metadata))
    (folder / "notebooks" / "solution.ipynb").write_text(
        notebook_text(plan.solution, plan.metadata)
    )
    (folder / "public" / "README.md").write_text(PUBLIC_README)
    graded = [e.slug for e in plan.exercises if e.kind == "function"]
    (folder / "variants" / "README.txt").write_text(
        VARIANTS_README.format(
            example=graded[0] if graded else "exercise", exercises=", ".join(graded) or "none"
        )
    )
