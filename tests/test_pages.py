"""The server-rendered pages, driven in real headless Chromium (Debian's, via Playwright)
against a running embedded service: a student signs in, drops the solution notebook on
the upload form, watches the status change live and reads full marks; a TA sorts the
gradebook, reads the histograms and the queue, and regrades an assignment while the
progress bar fills. Each page is saved to test-artifacts/screenshots/."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from graders.notebooks import code_notebook
from tests.support.browser import SHOTS
from tests.support.notebooks import course_notebook
from tests.support.paths import HW1, HW1_DIR
from tests.support.stack import Stack

SOLUTION = HW1_DIR / "notebooks" / "solution.ipynb"

# Records every value the live status badge takes, from before the page's scripts run.
STATUS_RECORDER = """
window.__statuses = [];
new MutationObserver(() => {
  const el = document.getElementById("status");
  if (!el) return;
  const s = el.textContent.trim();
  if (window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def new_context(browser: Browser, phone: bool = False) -> BrowserContext:
    if phone:
        return browser.new_context(
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
            device_scale_factor=1,
        )
    return browser.new_context(viewport={"width": 1200, "height": 800})


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    return errors


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, stack: Stack, user: str, start: str = "/ui/") -> None:
    page.goto(stack.base_url + start)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("Token").fill(stack.tokens[user])
    page.get_by_role("button", name="Sign in").click()


def busy_queue(stack: Stack, n: int = 4) -> list[str]:
    """Keep the single embedded worker busy (a few seconds, whatever the machine's speed),
    so that a new submission visibly waits in the queue."""
    slow = code_notebook("import time\ntime.sleep(2)\n")
    ids = []
    for i in range(n):
        r = stack.submit("bob", HW1, f"busy{i}.ipynb", slow)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def test_student_uploads_by_drag_and_drop_and_watches_grading_live(
    browser: Browser, embedded: Stack
) -> None:
    context = new_context(browser)
    page = context.new_page()
    errors = watch_errors(page)
    page.add_init_script(STATUS_RECORDER)

    page.goto(embedded.base_url + "/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "01-login")
    page.get_by_label("Token").fill("ag_not_a_real_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    errors.clear()  # that page came with its 401, on purpose

    page.get_by_label("Token").fill(embedded.tokens["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/courses/dlp$"))
    cookie = next(c for c in context.cookies() if c["name"] == "ag_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the token
    expect(page.get_by_role("link", name=re.compile("Training basics"))).to_be_visible()
    shot(page, "02-course-student")

    page.get_by_role("link", name=re.compile("Training basics")).click()
    expect(page.get_by_role("heading", name="Submit")).to_be_visible()
    expect(page.locator("#file-help")).to_contain_text("At most 20 MB")

    # A file of the wrong kind is refused in the browser: no request leaves the page.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_label(re.compile("Choose a file")).set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    expect(page.locator("#upload-error")).to_contain_text("not a kind of file")
    page.get_by_role("button", name="Upload and grade").click()
    expect(page.locator("#upload-error")).to_be_visible()
    assert posts == []
    shot(page, "03-assignment-wrong-file")

    # The solution notebook, dropped on the drop zone.
    busy_queue(embedded)
    transfer = page.evaluate_handle(
        """(text) => { const dt = new DataTransfer();
           dt.items.add(new File([text], "solution.ipynb", {type: "application/json"}));
           return dt; }""",
        SOLUTION.read_text(),
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.locator("#file-chosen")).to_contain_text("solution.ipynb")
    expect(page.locator("#upload-error")).to_be_hidden()
    shot(page, "04-assignment-file-dropped")
    page.get_by_role("button", name="Upload and grade").click()
    expect(page).to_have_url(re.compile(r"/ui/submissions/[0-9a-f]+$"))
    submission_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#status")).to_have_text("queued")
    expect(page.locator(".waiting")).to_be_visible()
    shot(page, "05-submission-queued")

    expect(page.locator("#status")).to_have_text("graded", timeout=180_000)
    expect(page.locator("#total-score")).to_be_visible()
    # No reload happened: the flag set on this document survived, and the badge moved.
    assert page.evaluate("window.__sameDocument") is True
    statuses = page.evaluate("window.__statuses")
    assert statuses[0] == "queued" and statuses[-1] == "graded", statuses
    assert len(statuses) >= 2, statuses

    with embedded.client("alice") as c:
        body = c.get(f"/api/v1/submissions/{submission_id}").json()
    assert body["status"] == "graded" and body["score"] == pytest.approx(body["max_score"])
    full = f"{body['max_score']:g} / {body['max_score']:g}"
    expect(page.locator("#total-score")).to_have_text(full)
    outcomes = page.locator("table.tests .badge").all_inner_texts()
    assert outcomes and set(outcomes) == {"passed"}, outcomes
    for ex in body["exercises"]:
        expect(page.get_by_role("heading", name=re.compile(re.escape(ex["slug"])))).to_be_visible()
        for test in ex["tests"]:
            expect(page.get_by_role("cell", name=test["name"], exact=True)).to_be_visible()
    # The student sees what submission_view shows them: hidden tests only as a count.
    hidden = sum(1 for ex in body["exercises"] if ex.get("hidden_tests"))
    assert page.locator(".hidden-tests").count() == hidden
    shot(page, "06-submission-graded")

    page.get_by_role("link", name="Assignments").click()
    row = page.get_by_role("row", name=re.compile("Training basics"))
    expect(row).to_contain_text(f"{body['score']:g} / ")
    shot(page, "07-course-with-score")
    assert errors == [], errors

    # Readable on a phone.
    phone = new_context(browser, phone=True)
    phone.add_cookies(context.cookies())
    small = phone.new_page()
    for path, name in (
        (f"/ui/courses/dlp/assignments/{HW1}", "08-phone-assignment"),
        (f"/ui/submissions/{submission_id}", "09-phone-submission"),
    ):
        small.goto(embedded.base_url + path)
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
        shot(small, name)
    phone.close()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    assert not [c for c in context.cookies() if c["name"] == "ag_session"]
    context.close()


def test_ta_regrades_an_assignment_and_sees_the_progress_bar_finish(
    browser: Browser, embedded: Stack
) -> None:
    for user, which in (("alice", "solution"), ("bob", "starter")):
        graded = embedded.grade(user, HW1, f"{which}.ipynb", course_notebook(HW1, which))
        assert graded["status"] == "graded"
    context = new_context(browser)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, embedded, "tina", start="/ui/courses/dlp/gradebook")
    expect(page).to_have_url(re.compile(r"/ui/courses/dlp/gradebook$"))

    # Client-side sort: by hw1's total, then reversed.
    header = page.get_by_role("columnheader", name=HW1)
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    index = page.locator("#gradebook thead th").evaluate_all(
        f"(ths) => ths.findIndex(th => th.textContent.trim() === {json.dumps(HW1)})"
    )

    def column() -> list[float]:
        cells = page.locator(f"#gradebook tbody tr td:nth-child({index + 1})")
        values = cells.evaluate_all("(tds) => tds.map(td => td.dataset.value)")
        return [float(v) for v in values if v]

    ascending = column()
    assert len(ascending) >= 2 and ascending == sorted(ascending), ascending
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    assert column() == sorted(ascending, reverse=True)
    shot(page, "10-gradebook-sorted")

    page.get_by_role("link", name="Statistics").click()
    chart = page.get_by_role("img", name=re.compile(f"Histogram of scores: {HW1}"))
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() == 10
    shot(page, "11-statistics")

    page.get_by_role("link", name="Assignments").click()
    page.get_by_role("link", name=re.compile("Training basics")).click()
    button = page.get_by_role("button", name=re.compile(r"Regrade all \d+ submissions"))
    total = int(re.search(r"\d+", button.inner_text()).group())
    assert total >= 2
    button.click()
    bar = page.get_by_label("Regrade progress")
    expect(bar).to_be_visible()

    # While it runs, the queue shows the jobs waiting and running.
    queue = context.new_page()
    queue.goto(embedded.base_url + "/ui/courses/dlp/queue")
    expect(queue.get_by_role("heading", name=re.compile(r"^Waiting"))).to_be_visible()
    shot(queue, "12-queue-during-regrade")
    queue.close()

    expect(page.locator("#regrade-status")).to_contain_text("Done", timeout=300_000)
    assert bar.evaluate("(p) => p.value === p.max && p.max >= 2")
    expect(page.locator("#regrade-status")).to_contain_text(f"of {total} regraded")
    shot(page, "13-regrade-done")

    # A submission's history shows the old and the new score.
    page.reload()
    page.get_by_role("row", name=re.compile("alice")).first.get_by_role("link").click()
    history = page.locator("table.jobs tbody tr")
    expect(history.first).to_contain_text("assignment regrade")
    assert history.count() >= 2
    expect(history.first.locator("td").nth(3)).not_to_have_text("—")  # an old score
    shot(page, "14-submission-job-history")

    # Regrade just this one: the status follows it live, away from graded and back.
    page.evaluate(STATUS_RECORDER)
    page.get_by_label("Reason (kept in the job history)").fill("checking one <b>bold</b> claim")
    page.get_by_role("button", name="Regrade", exact=True).click()
    expect(page.locator("#regrade-one-status")).to_contain_text("queued as job")
    page.wait_for_function(
        "() => window.__statuses.some(s => s !== 'graded') && "
        "window.__statuses[window.__statuses.length - 1] === 'graded'",
        timeout=180_000,
    )
    expect(page.locator("#feedback .note")).to_have_count(0)  # "being graded again" is gone
    expect(page.locator("#total-score")).to_be_visible()
    shot(page, "15-submission-regraded-live")
    page.reload()
    expect(page.locator("table.jobs tbody tr").first).to_contain_text(
        "checking one <b>bold</b> claim"
    )  # shown as text, escaped
    assert errors == [], errors
    context.close()


def _cookie_client(stack: Stack, user: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.base_url,
        cookies={"ag_session": stack.tokens[user]},
        timeout=30,
        follow_redirects=False,
    )


def test_pages_need_a_cookie_and_refuse_other_sites(embedded: Stack) -> None:
    with httpx.Client(base_url=embedded.base_url, timeout=30) as anonymous:
        r = anonymous.get("/ui/courses/dlp", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Fcourses%2Fdlp"
        r = anonymous.get("/ui/submissions/abc/events")
        assert r.status_code == 401 and "sign in" in r.json()["detail"]
        r = anonymous.get("/ui/regrades/abc")
        assert r.status_code == 401
        # An open redirect is not possible through ?next=.
        r = anonymous.post(
            "/ui/login", data={"token": embedded.tokens["alice"], "next": "//evil.example/"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui/"

    with _cookie_client(embedded, "alice") as alice:
        # The JSON API does not take the cookie: it keeps the Bearer header.
        assert alice.get("/api/v1/courses/dlp/assignments").status_code == 401
        page = alice.get("/ui/courses/dlp")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        r = alice.get("/ui/courses/dlp/gradebook")
        assert r.status_code == 403 and "TAs and instructors" in r.text
        assert r.headers["content-type"].startswith("text/html")
        r = alice.post(
            f"/ui/courses/dlp/assignments/{HW1}/regrade",
            json={},
            headers={"Origin": embedded.base_url},
        )
        assert r.status_code == 403 and "TAs and instructors" in r.json()["detail"]
        assert alice.get("/ui/submissions/not-a-submission").status_code == 404

    with _cookie_client(embedded, "tina") as tina:
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = tina.post(f"/ui/courses/dlp/assignments/{HW1}/regrade", json={}, headers=headers)
            assert r.status_code == 403, r.text
            assert "own pages" in r.json()["detail"]


def test_everything_shown_is_escaped(embedded: Stack) -> None:
    name = "<img src=x onerror=alert(1)>.py"
    r = embedded.submit("alice", HW1, name, b"def label_smoothing_ce(l, t, s):\n    return 1\n")
    assert r.status_code == 202, r.text
    submission_id = r.json()["id"]
    with _cookie_client(embedded, "alice") as alice:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            html = alice.get(f"/ui/submissions/{submission_id}").text
            if "Score:" in html:
                break
            time.sleep(0.3)
        assert "<img src=x" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;.py" in html
        fragment = alice.get(f"/ui/submissions/{submission_id}/feedback").text
        assert "<img" not in fragment


def test_plain_form_upload_without_javascript(embedded: Stack) -> None:
    with _cookie_client(embedded, "bob") as bob:
        url = f"/ui/courses/dlp/assignments/{HW1}/submissions"
        r = bob.post(
            url,
            files={"file": ("solution.ipynb", SOLUTION.read_bytes())},
            headers={"Origin": embedded.base_url},
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/submissions/")
        r = bob.post(
            url, files={"file": ("model.txt", b"nope")}, headers={"Origin": embedded.base_url}
        )
        assert r.status_code == 422
        assert "Unsupported file type" in r.text and "<h1>" in r.text
