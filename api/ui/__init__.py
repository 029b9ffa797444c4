"""Server-rendered pages for students and staff, signed in with a token in a cookie.

- `render`: templates (autoescape on), filters, security headers;
- `signin`: the cookie, sign-in and sign-out, same-site checks, errors as pages;
- `student`: courses, assignments and the upload form, submissions and their live status;
- `staff`: gradebook and its CSV, statistics (`charts`), the queue, regrades;
- `manual`: the grading page of a manual exercise (rubric, adjustment, comment).

Every handler calls the services the JSON API calls (api/services), under the same
rules (api/services/access.py); none of them calls the application again, so a page
request takes one permit of the in-flight limit, like any other request.
"""

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from api.ui import manual, signin, staff, student
from api.ui.render import STATIC

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=STATIC), name="static")
for module in (signin, student, staff, manual):
    router.include_router(module.router, include_in_schema=False)

__all__ = ["router"]
