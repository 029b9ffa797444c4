"""`autograder assignment new` scaffolds a folder that passes the self-check as generated,
and `graders.authoring.bundle` packs a folder into the same bytes every time."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from cli.main import main as cli_main
from core.bundles import build_bundle
from graders.authoring.bundle import pack, unpack
from graders.authoring.plan import AuthoringError
from graders.course import load_assignment
from graders.selfcheck import check_assignment
from worker.sandbox.launcher import sandbox_provider

pytestmark = pytest.mark.fast


def test_the_scaffold_passes_the_self_check_as_generated(tmp_path: Path) -> None:
    out = tmp_path / "week-1"
    assert cli_main(["assignment", "new", "week-1", "--out", str(out)]) == 0
    for path in (
        "assignment.toml",
        "reference.py",
        "tests.py",
        "notebooks/starter.ipynb",
        "notebooks/solution.ipynb",
        "public",
    ):
        assert (out / path).exists(), path
    assert len(list((out / "variants").glob("softplus__*.py"))) == 2
    result = check_assignment(out, sandbox_provider)
    assert result.ok
    variants = [r for r in result.rows if r.variant.startswith("variant ")]
    assert len(variants) == 2 and all(r.ok and r.lost for r in variants)
    assert load_assignment(out).meta.imported_from is None  # variants are required here
    # The same command refuses to overwrite a folder unless told to.
    assert cli_main(["assignment", "new", "week-1", "--out", str(out), "--no-check"]) == 2


def test_a_scaffold_without_its_variants_fails_the_self_check(tmp_path: Path) -> None:
    out = tmp_path / "week-2"
    assert cli_main(["assignment", "new", "week-2", "--out", str(out), "--no-check"]) == 0
    for path in (out / "variants").glob("*.py"):
        path.unlink()
    result = check_assignment(out, sandbox_provider)
    assert not result.ok  # only imported folders get the warning instead


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle-me"
    (folder / "notebooks").mkdir(parents=True)
    (folder / "__pycache__").mkdir()
    (folder / "assignment.toml").write_text('title = "t"\n')
    (folder / "notebooks" / "starter.ipynb").write_text("{}")
    (folder / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    (folder / ".ipynb_checkpoints").mkdir()
    return folder


def test_pack_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    first = pack(folder)
    (folder / "assignment.toml").touch()  # a new mtime changes nothing
    assert pack(folder) == first
    names = tarfile.open(fileobj=io.BytesIO(first), mode="r:gz").getnames()
    assert names == ["assignment.toml", "notebooks", "notebooks/starter.ipynb"]
    # The very bytes of the service's own bundles of a folder (what publishing stores).

    assert build_bundle(folder) == first
    out = tmp_path / "unpacked"
    assert unpack(first, out) == ["assignment.toml", "notebooks/starter.ipynb"]
    assert (out / "notebooks" / "starter.ipynb").read_text() == "{}"
    (folder / "reference.py").write_text("x = 1\n")
    assert pack(folder) != first


def test_pack_refuses_links_and_unpack_refuses_escapes(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "link").symlink_to("/etc/passwd")
    with pytest.raises(AuthoringError, match="symbolic link"):
        pack(folder)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(AuthoringError, match="outside its folder"):
        unpack(raw.getvalue(), tmp_path / "target")
    assert not (tmp_path / "escape.py").exists()
    with pytest.raises(AuthoringError, match="not a .tar.gz"):
        unpack(b"not a bundle", tmp_path / "target2")
