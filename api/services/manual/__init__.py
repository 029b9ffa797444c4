"""Manual grading with rubrics (docs/API.md, "Manual exercises"): the service functions
the JSON API and the grading pages share.

- `grading_list(db, member, assignment, exercise, anonymous)` -> list[GradingEntry]
- `answer_view(db, user, submission_id, exercise, anonymous)` -> AnswerOut
- `put_grade(db, user, submission_id, exercise, ManualGradeIn)` -> ManualGradeOut
- `rubric_items(db, member, assignment, exercise)` -> list[RubricItemIO]
- `replace_rubric(db, member, assignment, exercise, items)` -> (items, rescored)
- `manual_results(db, submission, viewer_is_staff)` -> the manual exercises' part of a
  submission's results (api/services/presenters.py)
"""

from api.services.manual.feedback import ManualResults, manual_results
from api.services.manual.grading import HIDDEN_NOTE, answer_view, grading_list, put_grade
from api.services.manual.rubrics import replace_rubric, rubric_items

__all__ = [
    "HIDDEN_NOTE",
    "ManualResults",
    "answer_view",
    "grading_list",
    "manual_results",
    "put_grade",
    "replace_rubric",
    "rubric_items",
]
