"""The manual grading pages without a browser (the fast tier: the real app in-process):
what the grading page renders (one answer, the rubric as toggles with their keys and
states, labelled fields, a live region, anonymity until graded), its save route, who
may open or use them, the student's view before and after the release, and that the
sanitised answer is the only markup the pages do not escape. The keyboard itself is
driven in Chromium in tests/test_manual_pages.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.inprocess import InProcessService
from tests.support.manual_answers import (
    GRADING,
    MANUAL,
    STUDENTS,
    expected_score,
    fmt,
    student_answer,
)
from tests.support.paths import HW2, ROOT

pytestmark = pytest.mark.fast
ORIGIN = {"Origin": InProcessService.base_url}


@pytest.fixture(scope="module")
def answers(service: InProcessService) -> dict[str, str]:
    """alice, bob and carol each hand in a graded hw2 notebook answering the exercise."""
    service.add_user("carol")
    ids = {}
    for student in STUDENTS:
        body = service.grade(student, HW2, f"{student}.ipynb", student_answer(student))
        assert body["status"] == "graded", body
        ids[student] = body["id"]
    return ids


@pytest.fixture(scope="module")
def rubric(service: InProcessService, answers: dict[str, str]) -> list[dict[str, Any]]:
    path = f"/api/v1/courses/dlp/assignments/{HW2}/exercises/{MANUAL}/rubric"
    items: list[dict[str, Any]] = service.client("tina").get(path).json()
    assert len(items) >= 3, items
    return items


def signed_in(service: InProcessService, user: str) -> TestClient:
    """A browser's view of the pages: the session cookie, no Authorization header."""
    return TestClient(
        service.app, raise_server_exceptions=False, cookies={"ag_session": service.tokens[user]}
    )


@pytest.fixture
def tina(service: InProcessService) -> Iterator[TestClient]:
    with signed_in(service, "tina") as client:
        yield client


def form_of(html: str) -> dict[str, str]:
    """The grading form's data attributes."""
    tag = re.search(r'<form id="grade-form"[^>]*>', html)
    assert tag, html[:2000]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group()))


def toggles(html: str) -> list[tuple[str, str]]:
    """(item id, aria-pressed) of each rubric toggle, in order."""
    return re.findall(
        r'class="rubric-item" data-item="([^"]+)"[^>]*?aria-pressed="(\w+)"', html, flags=re.S
    )


def test_the_grading_page_shows_one_answer_with_its_rubric_and_saves_it(
    service: InProcessService,
    answers: dict[str, str],
    rubric: list[dict[str, Any]],
    tina: TestClient,
) -> None:
    owner = {sid: student for student, sid in answers.items()}
    listing_path = f"/api/v1/courses/dlp/assignments/{HW2}/exercises/{MANUAL}/grading"
    graded_before = sum(e["graded"] for e in service.client("tina").get(listing_path).json())
    assert graded_before < 3
    page = tina.get(GRADING + "?anonymous=1")
    assert page.status_code == 200, page.text
    html = page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert f'id="graded-count">{graded_before}</strong> of <span id="total-count">3<' in html
    assert toggles(html) == [(item["id"], "false") for item in rubric]
    for key in range(1, min(len(rubric), 9) + 1):
        assert f'aria-keyshortcuts="{key}"' in html
    assert '<label for="grade-adjustment">' in html and '<label for="grade-comment">' in html
    assert '<p id="grade-status" role="status" aria-live="polite">' in html
    # Anonymous: the first answer not graded, under a pseudonym; no student's name shown.
    form = form_of(html)
    first = form["submission"]
    assert first in owner
    assert re.search(r'<span id="answer-student">anon-[0-9a-f]+</span>', html)
    main = html[html.index("<main") : html.index("</main>")]
    assert not any(name in main for name in STUDENTS)
    assert re.search(r"Answer [1-3] of 3", html)

    # The page's script saves through this route (the cookie, from the service's pages).
    comment = "Clear on <b>resolution</b>.\nNo failure case."
    body = {"rubric": [rubric[0]["id"], rubric[1]["id"]], "adjustment": -0.25, "comment": comment}
    saved = tina.put(form["url"], json=body, headers=ORIGIN)
    assert saved.status_code == 200, saved.text
    score = expected_score(rubric, [1, 2], -0.25, 3.0)
    reply = saved.json()
    assert reply["score"] == pytest.approx(score)
    assert reply["progress"] == {"graded": graded_before + 1, "total": 3}
    assert reply["student"] == owner[first]  # the name, once graded

    # The same answer again: its grade in the form, the name shown, the next one offered.
    html = tina.get(GRADING + f"?anonymous=1&submission={first}").text
    applied = {rubric[0]["id"], rubric[1]["id"]}
    assert toggles(html) == [(i["id"], "true" if i["id"] in applied else "false") for i in rubric]
    assert 'value="-0.25"' in html
    assert ">Clear on &lt;b&gt;resolution&lt;/b&gt;.\nNo failure case.</textarea>" in html
    assert f'<span id="answer-student">{owner[first]}</span>' in html
    assert f"{fmt(score)} / 3" in html
    # Without ?submission=, the page opens at the next answer not graded.
    assert form_of(tina.get(GRADING).text)["submission"] != first

    listing = service.client("tina").get(listing_path).json()
    assert [e["score"] for e in listing if e["submission_id"] == first] == [pytest.approx(score)]


def test_a_hostile_answer_is_shown_as_text(
    service: InProcessService, answers: dict[str, str], tina: TestClient
) -> None:
    html = tina.get(GRADING + f"?submission={answers['carol']}").text
    answer = html[html.index('id="answer-body"') : html.index('id="grade-heading"')]
    assert "IG is sharper than grad-CAM" in answer
    assert "&lt;script&gt;" in answer
    tags = re.findall(r"<[a-zA-Z][^>]*>", answer)
    assert tags, answer
    for tag in tags:  # markup that could act: none; the text of it is shown, escaped
        assert not re.search(r"\son\w+\s*=|javascript:|<script|<iframe|src=\"http", tag), tag
    # The one script of the page is the service's own.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
    image = tina.get(GRADING + f"?submission={answers['alice']}").text
    assert re.search(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]+"', image)


def test_the_student_sees_the_manual_grade_only_after_the_release(
    service: InProcessService, answers: dict[str, str], rubric: list[dict[str, Any]]
) -> None:
    submission_id = answers["bob"]
    comment = "Names a failure case.\nCompare the <em>resolution</em> too."
    staff = service.client("tina")
    grade = staff.put(
        f"/api/v1/submissions/{submission_id}/exercises/{MANUAL}/manual",
        json={"rubric": [rubric[2]["id"]], "adjustment": 0.5, "comment": comment},
    )
    assert grade.status_code == 200, grade.text
    score = expected_score(rubric, [3], 0.5, 3.0)
    settings = f"/api/v1/courses/dlp/assignments/{HW2}"
    assert service.client("ivan").patch(settings, json={"released": False}).status_code == 200

    with signed_in(service, "bob") as bob:
        before = bob.get(f"/ui/submissions/{submission_id}").text
        section = unescape(before[before.index('class="exercise manual"') :])
        assert "Graded by the course's staff" in section and "released" in section
        assert "applied-items" not in before and "Compare the" not in before
        assert "Grade this answer" not in before
        assert "Compare the" not in bob.get(f"/ui/submissions/{submission_id}/feedback").text

        assert service.client("ivan").patch(settings, json={"released": True}).status_code == 200
        after = bob.get(f"/ui/submissions/{submission_id}").text
        section = after[after.index('class="exercise manual"') :]
        assert f"{fmt(score)} / 3" in section
        assert rubric[2]["description"][:40] in unescape(section)
        assert rubric[0]["description"][:40] not in unescape(section)
        assert "Adjustment by the grader: +0.5 points" in section
        assert (
            '<div class="manual-comment">Names a failure case.\nCompare the '
            "&lt;em&gt;resolution&lt;/em&gt; too.</div>"
        ) in section
        # The live-update fragment says the same.
        assert "manual-comment" in bob.get(f"/ui/submissions/{submission_id}/feedback").text


def test_grading_page_and_its_save_are_for_the_course_staff_from_its_own_pages(
    service: InProcessService, answers: dict[str, str], tina: TestClient
) -> None:
    save = f"/ui/submissions/{answers['bob']}/exercises/{MANUAL}/manual"
    body = {"rubric": [], "adjustment": 1, "comment": "x"}
    with signed_in(service, "alice") as alice:
        page = alice.get(GRADING)
        assert page.status_code == 403 and "TAs and instructors" in page.text
        assert page.headers["content-type"].startswith("text/html")
        # Another student's answer does not exist for alice; her own she cannot grade.
        assert alice.put(save, json=body, headers=ORIGIN).status_code == 404
        own = f"/ui/submissions/{answers['alice']}/exercises/{MANUAL}/manual"
        assert alice.put(own, json=body, headers=ORIGIN).status_code == 403
        # The assignment's page offers students no grading link.
        assert "Grade the answers" not in alice.get(f"/ui/courses/dlp/assignments/{HW2}").text

    # The staff's pages link to it: the assignment, the gradebook, each submission.
    assert f'href="{GRADING}"' in tina.get(f"/ui/courses/dlp/assignments/{HW2}").text
    assert f'href="{GRADING}"' in tina.get("/ui/courses/dlp/gradebook").text
    link = f'href="{GRADING}?submission={answers["bob"]}"'
    assert link in tina.get(f"/ui/submissions/{answers['bob']}").text
    assert tina.get(GRADING + "?submission=nope").status_code == 404
    assert tina.get(GRADING + "?submission=" + "x" * 65).status_code == 422
    assert tina.get(f"/ui/courses/dlp/assignments/{HW2}/exercises/fgsm/grading").status_code == 404
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = tina.put(save, json=body, headers=headers)
        assert r.status_code == 403 and "own pages" in r.json()["detail"]
    r = tina.put(save, json={"rubric": ["no-such-item"]}, headers=ORIGIN)
    assert r.status_code == 422 and "not in the rubric" in r.json()["detail"]
    r = tina.put(save, json={"adjustment": 1e9}, headers=ORIGIN)
    assert r.status_code == 422

    with TestClient(service.app, raise_server_exceptions=False) as anonymous:
        r = anonymous.get(GRADING, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
        assert anonymous.put(save, json=body).status_code == 401


def test_the_answer_html_is_the_only_markup_the_pages_do_not_escape() -> None:
    """Autoescape is on for every template; the one value passed as markup is the
    sanitiser's output on the grading page (api/ui/manual.py), and no template opts out."""
    for template in (ROOT / "api" / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"\|\s*safe\b|autoescape\s+false", text), template.name
    uses = {
        path.name: path.read_text().count("Markup(") for path in (ROOT / "api" / "ui").glob("*.py")
    }
    assert {name: n for name, n in uses.items() if n} == {"manual.py": 1}
    source = (ROOT / "api" / "ui" / "manual.py").read_text()
    assert "Markup(answer.html)" in source  # AnswerOut.html: render_answer's sanitised HTML
