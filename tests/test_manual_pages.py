"""The manual grading pages, driven in real headless Chromium (Debian's, via Playwright)
against an embedded service of their own: a TA grades three hw2 `saliency-discussion`
answers with the keyboard only (digits toggle rubric items, typing in the comment does
not, Ctrl+Enter or s saves, n goes on), anonymously until each is graded, and the scores
land in the JSON API; a student sees their rubric feedback only once the assignment's
feedback is released. The pages run under the strict CSP with no violation, no script
of a hostile answer runs and nothing is fetched from elsewhere. Each page is saved to
test-artifacts/screenshots/. (What the pages render, and who may open them, is also
checked without a browser in the fast tier: tests/test_manual_pages_fast.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import SHOTS
from tests.support.manual_answers import (
    GRADING,
    MANUAL,
    PNG_WIDTH,
    STUDENTS,
    expected_score,
    fmt,
    student_answer,
)
from tests.support.paths import HW2
from tests.support.stack import Stack, embedded_stack

# Records CSP violations and anything a hostile answer might run, before the page's
# own scripts.
WATCHERS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An embedded service of this module's own: the grading list holds exactly the
    three answers submitted here."""
    own = embedded_stack(tmp_path_factory.mktemp("manual-pages"))
    try:
        own.add_user("carol")
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def answers(stack: Stack) -> dict[str, str]:
    """Each student's graded hw2 notebook (the grading list holds graded ones only)."""
    ids = {}
    for student in STUDENTS:
        response = stack.submit(student, HW2, f"{student}.ipynb", student_answer(student))
        assert response.status_code == 202, response.text
        ids[student] = response.json()["id"]
    for student, submission_id in ids.items():
        assert stack.wait_graded(student, submission_id, timeout=600)["status"] == "graded"
    return ids


def watch(page: Page, base_url: str) -> list[str]:
    """Console errors, page errors and requests to anywhere but the service."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith((base_url, "data:"))
            else problems.append(f"request elsewhere: {r.url}")
        ),
    )
    page.add_init_script(WATCHERS)
    return problems


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, stack: Stack, user: str, start: str) -> None:
    page.goto(stack.base_url + start)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("Token").fill(stack.tokens[user])
    page.get_by_role("button", name="Sign in").click()


def api(stack: Stack, user: str, method: str, path: str, **kwargs: Any) -> Any:
    with stack.client(user) as client:
        response = client.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def rubric_of(stack: Stack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api(
        stack, "ta", "GET", f"/api/v1/courses/dlp/assignments/{HW2}/exercises/{MANUAL}/rubric"
    )
    assert len(items) >= 3, items  # docs/course.md: resolution, predicted class, failure case
    return items


def shown_submission(page: Page) -> str:
    submission_id = page.locator("#grade-form").get_attribute("data-submission")
    assert submission_id, "the grading form names no submission"
    return submission_id


def pressed(page: Page) -> list[int]:
    states = page.locator("button.rubric-item").evaluate_all(
        "(bs) => bs.map(b => b.getAttribute('aria-pressed'))"
    )
    return [i + 1 for i, s in enumerate(states) if s == "true"]


# What the TA does to each answer in turn, with the keyboard: rubric keys (a key twice
# toggles the item back off), the adjustment typed, the comment typed, how it is saved.
@dataclass(frozen=True)
class Turn:
    keys: tuple[str, ...]
    adjustment: str | None
    comment: str
    save: str


PLAN = [
    Turn(("1", "2"), None, "Resolution: right. 1 2 n p: see the maps", "Control+Enter"),
    Turn(("3",), "-0.5", "Names a failure; no comparison.", "s"),
    Turn(("1", "2", "3", "2"), "0.25", "Sharper IG, good.\nMore?", "s"),
]


def test_ta_grades_three_answers_with_the_keyboard_only(
    browser: Browser, stack: Stack, answers: dict[str, str]
) -> None:
    items = rubric_of(stack)
    owner = {sid: student for student, sid in answers.items()}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch(page, stack.base_url)

    sign_in(page, stack, "ta", f"/ui/courses/dlp/assignments/{HW2}")
    link = page.get_by_role("link", name="Grade the answers")
    expect(link).to_have_attribute("href", GRADING)
    page.goto(stack.base_url + GRADING + "?anonymous=1")
    expect(page.get_by_role("heading", name=re.compile(f"Grading {MANUAL}"))).to_be_visible()
    expect(page.locator("#grading-progress-text")).to_have_text(
        re.compile(r"0\s+of\s+3 answers graded")
    )
    first = page.get_by_role("button", name=re.compile(re.escape(items[0]["description"][:20])))
    expect(first).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#grade-status")).to_have_attribute("role", "status")
    expect(page.locator("#grade-status")).to_have_attribute("aria-live", "polite")

    graded: dict[str, dict[str, Any]] = {}
    for turn, plan in enumerate(PLAN, start=1):
        submission_id = shown_submission(page)
        assert submission_id in owner, submission_id
        student = owner[submission_id]
        expect(page.locator("#answer-position")).to_have_text(f"Answer {turn} of 3")
        # Anonymous until graded: a pseudonym, not the name.
        heading = page.locator("#answer-student")
        expect(heading).to_have_text(re.compile(r"^anon-"))
        assert student not in page.locator("main").inner_text()
        if student == "alice":
            image = page.locator("#answer-body img")
            expect(image).to_be_visible()
            assert image.evaluate(f"(i) => i.complete && i.naturalWidth === {PNG_WIDTH}")
        if student == "carol":
            body = page.locator("#answer-body")
            expect(body).to_contain_text("IG is sharper than grad-CAM")
            expect(body).to_contain_text("<script>")  # shown as text, not run
            assert body.locator("script, [onerror], a[href^='javascript'], iframe").count() == 0
            assert body.locator("img[src^='http']").count() == 0
            assert page.evaluate("window.__pwned") is None

        if turn == 1:
            # Leaving with unsaved changes asks first (n again would discard them).
            page.keyboard.press("1")
            page.keyboard.press("n")
            expect(page.locator("#grade-status")).to_contain_text("not saved")
            assert submission_id in page.url or "submission=" not in page.url
            page.keyboard.press("1")
            assert pressed(page) == []
        for key in plan.keys:
            page.keyboard.press(key)
        keys = sorted({int(k) for k in plan.keys if plan.keys.count(k) % 2})
        assert pressed(page) == keys
        adjustment = 0.0
        if plan.adjustment is not None:
            page.keyboard.press("a")
            expect(page.locator("#grade-adjustment")).to_be_focused()
            page.keyboard.press("Control+a")
            page.keyboard.type(plan.adjustment)
            page.keyboard.press("Escape")
            adjustment = float(plan.adjustment)
        page.keyboard.press("c")
        comment = page.get_by_label("Comment to the student")
        expect(comment).to_be_focused()
        url = page.url
        page.keyboard.type(plan.comment)
        # Digits, n and p typed into the comment are text, not shortcuts.
        assert pressed(page) == keys and page.url == url
        expect(comment).to_have_value(plan.comment)
        score = expected_score(items, keys, adjustment, 3.0)
        expect(page.locator("#score-preview")).to_contain_text(f"{fmt(score)} / 3")
        if plan.save == "s":
            page.keyboard.press("Escape")
            expect(comment).not_to_be_focused()
        page.keyboard.press(plan.save)
        expect(page.locator("#grade-status")).to_have_text(f"Saved: {fmt(score)} / 3.")
        expect(page.locator("#graded-count")).to_have_text(str(turn))
        expect(heading).to_have_text(student)  # the name, once graded
        expect(page.locator(".all-answers a[aria-current=page]")).to_have_text(student)
        expect(page.locator(".all-answers li").nth(turn - 1)).to_contain_text(
            f"graded, {fmt(score)} / 3"
        )
        expect(page.locator("#answer-state")).to_have_text("graded")
        graded[submission_id] = {
            "score": score,
            "keys": keys,
            "comment": plan.comment,
            "adjustment": adjustment,
        }
        shot(page, f"manual-0{turn}-graded-answer-{turn}")
        if turn < len(PLAN):
            page.keyboard.press("Escape")
            page.keyboard.press("n")
            expect(page).to_have_url(re.compile(r"submission="))
            expect(page.locator("#answer-position")).to_have_text(f"Answer {turn + 1} of 3")

    expect(page.locator("#grading-progress-text")).to_have_text(
        re.compile(r"3\s+of\s+3 answers graded")
    )
    # Back with the arrow key: the saved grade is shown again, names now visible.
    last = shown_submission(page)
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#answer-position")).to_have_text("Answer 2 of 3")
    second = shown_submission(page)
    assert second != last
    assert pressed(page) == graded[second]["keys"]
    expect(page.get_by_label("Comment to the student")).to_have_value(graded[second]["comment"])
    expect(page.locator("#answer-student")).to_have_text(owner[second])
    # The list of all answers: each graded, with its name now that it is graded.
    summary = page.locator("details.all-answers summary")
    summary.focus()
    page.keyboard.press("Enter")
    entries = page.locator("details.all-answers li")
    expect(entries).to_have_count(3)
    texts = entries.all_inner_texts()
    assert sorted(t.split()[0] for t in texts) == sorted(STUDENTS), texts
    assert all("graded, " in t for t in texts), texts
    expect(page.locator("details.all-answers a[aria-current=page]")).to_have_text(owner[second])
    shot(page, "manual-04-back-to-answer-2")

    # The scores landed: the JSON API's grading list and each answer's grade.
    listing = api(
        stack, "ta", "GET", f"/api/v1/courses/dlp/assignments/{HW2}/exercises/{MANUAL}/grading"
    )
    assert {e["submission_id"]: e["score"] for e in listing} == {
        sid: pytest.approx(g["score"]) for sid, g in graded.items()
    }
    assert all(e["graded"] for e in listing)
    for sid, g in graded.items():
        answer = api(stack, "ta", "GET", f"/api/v1/submissions/{sid}/exercises/{MANUAL}/answer")
        grade = answer["grade"]
        assert grade["rubric"] == [items[k - 1]["id"] for k in g["keys"]]
        assert grade["comment"] == g["comment"]
        assert grade["adjustment"] == pytest.approx(g["adjustment"])
        assert grade["grader"] == "ta"
    csp = page.evaluate("window.__csp")
    assert csp == [] and problems == [], (csp, problems)

    # Usable on a phone: one column, nothing wider than the screen.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=1,
    )
    phone.add_cookies([{"name": "ag_session", "value": stack.tokens["ta"], "url": stack.base_url}])
    small = phone.new_page()
    small.goto(stack.base_url + GRADING)
    expect(small.locator("#grade-form")).to_be_visible()
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the grading page is {width} px wide on a 390 px phone"
    shot(small, "manual-07-phone-grading")
    phone.close()
    context.close()


def test_student_sees_rubric_feedback_only_after_release(
    browser: Browser, stack: Stack, answers: dict[str, str]
) -> None:
    items = rubric_of(stack)
    submission_id = answers["alice"]
    comment = "Compare <b>resolution</b> more carefully.\nOtherwise good."
    body = {"rubric": [items[0]["id"], items[2]["id"]], "adjustment": 0, "comment": comment}
    grade = api(
        stack,
        "ta",
        "PUT",
        f"/api/v1/submissions/{submission_id}/exercises/{MANUAL}/manual",
        json=body,
    )
    score = expected_score(items, [1, 3], 0.0, 3.0)
    assert grade["score"] == pytest.approx(score)
    settings = f"/api/v1/courses/dlp/assignments/{HW2}"
    released = api(stack, "instructor", "PATCH", settings, json={"released": False})
    assert released["released"] is False

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    problems = watch(page, stack.base_url)
    sign_in(page, stack, "alice", f"/ui/submissions/{submission_id}")
    section = page.locator("section.exercise.manual")
    expect(section).to_have_count(1)
    expect(section.get_by_role("heading")).to_contain_text(MANUAL)
    expect(section).to_contain_text("Graded by the course's staff")
    expect(section).to_contain_text("released")
    expect(section.locator(".applied-items")).to_have_count(0)
    assert "more carefully" not in page.content()
    assert page.get_by_role("link", name="Grade this answer").count() == 0
    shot(page, "manual-05-student-before-release")

    assert api(stack, "instructor", "PATCH", settings, json={"released": True})["released"] is True
    page.reload()
    section = page.locator("section.exercise.manual")
    expect(section.get_by_role("heading")).to_contain_text(f"{fmt(score)} / 3")
    applied = section.get_by_role("list", name=re.compile("Rubric items applied"))
    expect(applied.get_by_role("listitem")).to_have_count(2)
    for item in (items[0], items[2]):
        expect(applied).to_contain_text(item["description"][:40])
    expect(section).not_to_contain_text(items[1]["description"][:40])
    # The comment as the grader wrote it: text, line breaks kept, markup not interpreted.
    assert section.locator(".manual-comment").inner_text() == comment
    assert section.locator(".manual-comment b").count() == 0
    shot(page, "manual-06-student-after-release")

    body = api(stack, "alice", "GET", f"/api/v1/submissions/{submission_id}")
    manual = next(e for e in body["exercises"] if e["slug"] == MANUAL)
    assert manual["score"] == pytest.approx(score)
    csp = page.evaluate("window.__csp")
    assert csp == [] and problems == [], (csp, problems)
    context.close()
