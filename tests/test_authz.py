"""Who may do what: every endpoint x (anonymous, another student, the owner, a TA, an
instructor, the staff of another course), table-driven; then what a student sees
(never another's submission, hidden test details, the gradebook or anyone's jobs), and
rosters and tokens, which stay within the instructor's own courses. In-process (the
fast tier): the real app over SQLite, jobs graded as they are sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cli.main import main as cli_main
from core.accounts import enroll, get_or_create_user, issue_token
from core.models import Course
from tests.support.inprocess import InProcessService
from tests.support.paths import HW1
from tests.support.stack import dump
from tests.support.staffing import (
    clone_course,
    hw1_source,
    iso,
    patch_assignment,
    stack_db,
    submit,
    wait_graded,
)

COURSE = "authz"
OTHER = "authz-other"
ROLES = ("anonymous", "other_student", "owner", "ta", "instructor", "foreign_staff")
USERS = {
    "anonymous": None,
    "other_student": "bob",
    "owner": "alice",
    "ta": "tina",
    "instructor": "ivan",
    "foreign_staff": "olga",
}


pytestmark = pytest.mark.fast


@dataclass
class World:
    stack: InProcessService
    submission: str
    batch: str


@pytest.fixture(scope="module")
def world(service: InProcessService) -> World:
    clone_course(
        service,
        COURSE,
        {
            "alice": "student",
            "bob": "student",
            "dave": "student",
            "tina": "ta",
            "ivan": "instructor",
        },
    )
    clone_course(service, OTHER, {"olga": "instructor", "otto": "student"})
    patch_assignment(
        service, COURSE, due_at=iso(datetime.now(UTC) + timedelta(days=7)), released=False
    )
    response = submit(service, "alice", COURSE, hw1_source(label_smoothing=False))
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    wait_graded(service, "alice", sid)
    with service.client("ivan") as c:
        batch = c.post(f"/api/v1/courses/{COURSE}/assignments/{HW1}/regrade", json={}).json()
    wait_graded(service, "alice", sid, jobs=2)
    return World(service, sid, batch["batch_id"])


@dataclass
class Case:
    name: str
    method: str
    path: str
    #: expected status per role, in the order of ROLES
    codes: tuple[int, int, int, int, int, int]
    json: Any = None
    files: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    #: run before each role's request (puts back what the previous one removed)
    before: Callable[[World], None] | None = None


def _put_extension(w: World) -> None:
    with w.stack.client("ivan") as c:
        c.put(
            f"/api/v1/courses/{COURSE}/assignments/{HW1}/extensions/alice",
            json={"due_at": "2030-01-01T00:00:00Z"},
        ).raise_for_status()


A = f"/api/v1/courses/{COURSE}/assignments/{HW1}"
S = "/api/v1/submissions/{sid}"
PY = {"file": ("hw1.py", hw1_source())}
CSV = {"file": ("roster.csv", b"id,name,email\n")}
CASES = [
    # expected codes: anonymous, other student, owner, ta, instructor, staff of another course
    Case("health", "GET", "/healthz", (200, 200, 200, 200, 200, 200)),
    Case(
        "list assignments",
        "GET",
        f"/api/v1/courses/{COURSE}/assignments",
        (401, 200, 200, 200, 200, 403),
    ),
    Case("assignment rules", "GET", A, (401, 200, 200, 200, 200, 403)),
    Case("list submissions", "GET", f"{A}/submissions", (401, 200, 200, 200, 200, 403)),
    Case("submit", "POST", f"{A}/submissions", (401, 202, 202, 202, 202, 403), files=PY),
    Case("read submission", "GET", S, (401, 404, 200, 200, 200, 404)),
    Case("submission events", "GET", S + "/events", (401, 404, 200, 200, 200, 404)),
    Case("submission jobs", "GET", S + "/jobs", (401, 404, 403, 200, 200, 404)),
    Case("submission history", "GET", S + "/history", (401, 404, 200, 200, 200, 404)),
    Case(
        "regrade submission",
        "POST",
        S + "/regrade",
        (401, 404, 403, 202, 202, 404),
        json={"reason": "authz"},
    ),
    Case(
        "regrade exercise",
        "POST",
        f"{A}/regrade",
        (401, 403, 403, 202, 202, 403),
        json={"exercise": "early_stopping_epoch"},
    ),
    Case("regrade batch", "GET", "/api/v1/regrades/{batch}", (401, 403, 403, 200, 200, 404)),
    Case(
        "gradebook",
        "GET",
        f"/api/v1/courses/{COURSE}/gradebook.csv",
        (401, 403, 403, 200, 200, 403),
    ),
    Case(
        "gradebook long",
        "GET",
        f"/api/v1/courses/{COURSE}/gradebook.csv",
        (401, 403, 403, 200, 200, 403),
        params={"format": "long"},
    ),
    Case("change assignment", "PATCH", A, (401, 403, 403, 200, 200, 403), json={}),
    Case("list extensions", "GET", f"{A}/extensions", (401, 403, 403, 200, 200, 403)),
    Case(
        "grant extension",
        "PUT",
        f"{A}/extensions/alice",
        (401, 403, 403, 200, 200, 403),
        json={"due_at": "2030-01-01T00:00:00Z"},
    ),
    Case(
        "remove extension",
        "DELETE",
        f"{A}/extensions/alice",
        (401, 403, 403, 200, 200, 403),
        before=_put_extension,
    ),
    Case("members", "GET", f"/api/v1/courses/{COURSE}/users", (401, 403, 403, 200, 200, 403)),
    Case(
        "import roster",
        "POST",
        f"/api/v1/courses/{COURSE}/roster",
        (401, 403, 403, 403, 200, 403),
        files=CSV,
    ),
    Case(
        "issue token",
        "POST",
        f"/api/v1/courses/{COURSE}/users/dave/token",
        (401, 403, 403, 403, 200, 403),
    ),
    Case(
        "revoke tokens",
        "DELETE",
        f"/api/v1/courses/{COURSE}/users/dave/token",
        (401, 403, 403, 403, 200, 403),
    ),
    Case("audit log", "GET", f"/api/v1/courses/{COURSE}/audit", (401, 403, 403, 403, 200, 403)),
    Case(
        "leaderboard",
        "GET",
        f"{A}/exercises/early_stopping_epoch/leaderboard",
        (401, 200, 200, 200, 200, 403),
    ),
    # Publishing: an archive that is not one is refused (422) before any self-check.
    Case(
        "publish assignment",
        "POST",
        f"/api/v1/courses/{COURSE}/assignments",
        (401, 403, 403, 403, 422, 403),
        files={"bundle": ("hw.zip", b"not an archive")},
    ),
    Case("starter notebook", "GET", f"{A}/starter", (401, 200, 200, 200, 200, 403)),
    # Manual grading (hw1 has no manual exercise: staff get 404 for an automatic one;
    # tests/test_manual_grading_api.py covers a real one, roles and release included).
    Case(
        "manual grading list",
        "GET",
        f"{A}/exercises/early_stopping_epoch/grading",
        (401, 403, 403, 404, 404, 403),
    ),
    Case(
        "manual rubric",
        "GET",
        f"{A}/exercises/early_stopping_epoch/rubric",
        (401, 403, 403, 404, 404, 403),
    ),
    Case(
        "replace manual rubric",
        "PUT",
        f"{A}/exercises/early_stopping_epoch/rubric",
        (401, 403, 403, 404, 404, 403),
        json=[],
    ),
    Case(
        "manual answer",
        "GET",
        S + "/exercises/early_stopping_epoch/answer",
        (401, 404, 404, 404, 404, 404),
    ),
    Case(
        "manual grade",
        "PUT",
        S + "/exercises/early_stopping_epoch/manual",
        (401, 404, 404, 404, 404, 404),
        json={"rubric": []},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_authorization_matrix(world: World, case: Case) -> None:
    path = case.path.format(sid=world.submission, batch=world.batch)
    got = {}
    for role, expected in zip(ROLES, case.codes, strict=True):
        if case.before is not None:
            case.before(world)
        user = USERS[role]
        # Who may ask is the question here: the jobs a request sends are not graded.
        with world.stack.jobs_held(), world.stack.client(user) as c:
            response = c.request(
                case.method, path, json=case.json, files=case.files, params=case.params
            )
        got[role] = response.status_code
        if response.status_code >= 400:
            detail = response.json().get("detail")
            assert isinstance(detail, str) and detail, (role, response.text)
        if expected != response.status_code:
            got[role] = f"{response.status_code} (expected {expected}: {response.text[:120]})"
    assert list(got.values()) == list(case.codes), dump(got)


def test_every_api_route_is_in_the_matrix(world: World) -> None:
    """A new endpoint must be added to the table above (pages and metrics aside)."""
    schema = world.stack.client().get("/openapi.json").json()
    routes = {
        (m.upper(), p)
        for p, item in schema["paths"].items()
        for m in item
        if p.startswith("/api/") or p == "/healthz"
    }

    def template(path: str) -> str:
        path = path.replace(world.submission, "{submission_id}")
        path = path.replace(world.batch, "{batch_id}").replace(COURSE, "{course}", 1)
        path = path.replace(HW1, "{assignment}").replace("/alice", "/{student}")
        path = path.replace("/dave/", "/{name}/").replace("early_stopping_epoch", "{exercise}")
        return path

    covered = {
        (c.method, template(c.path.format(sid=world.submission, batch=world.batch))) for c in CASES
    }
    missing = sorted(r for r in routes if r not in covered)
    assert not missing, f"routes with no row in the authorization matrix: {missing}"


def test_a_student_sees_only_their_own_and_no_hidden_details(world: World) -> None:
    stack, sid = world.stack, world.submission
    with stack.client("bob") as c:
        listed = c.get(f"{A}/submissions").json()
        assert sid not in {s["id"] for s in listed}
        assert all(s["student"] == "bob" for s in listed)
        # Guessing ids or asking for someone's batch gives nothing away.
        for path in (f"/api/v1/submissions/{sid}", f"/api/v1/submissions/{sid}/history"):
            response = c.get(path)
            assert response.status_code == 404 and sid in response.json()["detail"]
    with stack.client("alice") as c:
        mine = c.get(f"/api/v1/submissions/{sid}").json()
        board = c.get(f"{A}/exercises/early_stopping_epoch/leaderboard").json()
    with stack.client("tina") as c:
        staff = c.get(f"/api/v1/submissions/{sid}").json()
    assert {t["visibility"] for ex in mine["exercises"] for t in ex["tests"]} == {"visible"}
    secret = {
        t["name"] for ex in staff["exercises"] for t in ex["tests"] if t["visibility"] != "visible"
    }
    assert secret and not any(name in str(mine) for name in secret)
    assert sum(
        ex["hidden_tests"]["count"] for ex in mine["exercises"] if ex["hidden_tests"]
    ) == len(secret)
    assert mine["score"] == staff["score"]
    # Other students appear on the leaderboard under pseudonyms, never by name.
    assert not any(row["name"] in ("bob", "dave") for row in board["rows"])


def test_tokens_and_rosters(
    world: World, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = world.stack
    with stack.client("ivan") as c:
        issued = c.post(
            f"/api/v1/courses/{COURSE}/users/dave/token", json={"revoke_existing": True}
        ).json()
    assert issued["user"] == "dave" and issued["token"].startswith("ag_")
    assignments = f"/api/v1/courses/{COURSE}/assignments"
    assert stack.client(token=issued["token"]).get(assignments).status_code == 200
    with stack.client("ivan") as c:
        assert c.delete(f"/api/v1/courses/{COURSE}/users/dave/token").json()["revoked"] >= 1
        assert c.post(f"/api/v1/courses/{COURSE}/users/nobody/token").status_code == 404
    assert stack.client(token=issued["token"]).get(assignments).status_code == 401

    # A user who is also staff elsewhere: a token issued here would act there too.
    with stack_db(stack) as db:
        multi = get_or_create_user(db, "multi")
        for slug, role in ((COURSE, "student"), (OTHER, "ta")):
            enroll(db, multi, db.scalar(select(Course).where(Course.slug == slug)), role)
        stack.tokens["multi"] = issue_token(db, multi)
    with stack.client("ivan") as c:
        for method in ("POST", "DELETE"):
            response = c.request(method, f"/api/v1/courses/{COURSE}/users/multi/token")
            assert response.status_code == 403 and OTHER in response.json()["detail"]
        # The roster enrolls them here but leaves their details (set elsewhere) alone.
        response = c.post(
            f"/api/v1/courses/{COURSE}/roster",
            files={
                "file": (
                    "r.csv",
                    b'id,name,email\nmulti,"Changed, Name",x@y.org\ntina,T,t@x.org\n'
                    b'newbie,"New, ""Kid""",new@x.org\n',
                )
            },
        )
    assert response.status_code == 200, response.text
    rows = {r["id"]: r for r in response.json()["rows"]}
    assert rows["multi"]["status"] == "unchanged" and rows["multi"]["token"] is None
    assert rows["tina"]["role"] == "ta" and rows["tina"]["token"] is None
    assert rows["newbie"]["status"] == "created" and rows["newbie"]["token"]
    with stack.client("tina") as c:
        members = {m["name"]: m for m in c.get(f"/api/v1/courses/{COURSE}/users").json()}
    assert members["multi"]["full_name"] != "Changed, Name"
    assert members["newbie"]["full_name"] == 'New, "Kid"' and members["tina"]["role"] == "ta"

    # Bad rosters change nothing and say why.
    with stack.client("ivan") as c:
        for data, words in [
            (b"name,email\nx,y\n", "id"),
            (b"id,name,email\nok1,A,a@x.org\nok1,B,b@x.org\n", "line 3"),
            (b"id,name,email\n,A,a@x.org\n", "line 2"),
            (b"\xff\xfe", "UTF-8"),
            (b"", "empty"),
        ]:
            response = c.post(f"/api/v1/courses/{COURSE}/roster", files={"file": ("r.csv", data)})
            assert response.status_code == 422, (data, response.text)
            assert words in response.json()["detail"], response.json()
        assert c.post(f"/api/v1/courses/{COURSE}/roster").status_code == 422
        members = {m["name"] for m in c.get(f"/api/v1/courses/{COURSE}/users").json()}
    assert "ok1" not in members

    # The same from the server's CLI (in this process): tokens for new users, once.
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name,email\ncli1,Cli One,c1@x.org\nnewbie,New Kid,new@x.org\n")
    capsys.readouterr()
    assert cli_main(["roster", "import", str(roster), "--course", COURSE]) == 0
    out = capsys.readouterr()
    lines = dict(line.split(",", 1) for line in out.out.strip().splitlines()[1:])
    assert lines["cli1"].startswith("created,student,ag_")
    assert lines["newbie"] == "updated,student,"
    token = lines["cli1"].rsplit(",", 1)[1]
    assert stack.client(token=token).get(assignments).status_code == 200
    with stack.client("ivan") as c:
        audit = c.get(f"/api/v1/courses/{COURSE}/audit", params={"limit": 50}).json()
    actions = [(e["action"], e["actor"]) for e in audit]
    assert ("import_roster", None) in actions and ("import_roster", "ivan") in actions
    assert ("issue_token", "ivan") in actions and ("revoke_tokens", "ivan") in actions
    assert not any("ag_" in str(e["details"]) for e in audit), "tokens must not be logged"
