"""The repository's own documentation holds: the settings table is the one the code
generates, every relative link resolves, and nothing points outside the repository.

No servers needed: these read files only.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import types
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.fast

DOCS = ROOT / "docs"
SCRIPT = ROOT / "scripts" / "settings_table.py"
#: Never scanned: git's own data and the virtual environment.
SKIPPED_DIRS = frozenset({".git", ".venv"})
#: Left out by the fallback walk when git is not available (the ignored folders).
IGNORED_DIRS = frozenset(
    {
        "var",
        "test-artifacts",
        "build",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
        "node_modules",
    }
)

# A path into the folder beside the repository that holds the design documents: a
# mention of it, with or without leading "../" parts, but not as the tail of a longer
# path (a/b/<name>/ is a folder of the repository). Spelled in two pieces so that this
# file does not match itself.
OUTSIDE_FOLDER = re.compile(r"(?<![\w./-])(?:\.\./)*" + "shared" + "/")
# A document named in capitals (README.md, API.md): it must be a file of the repository.
DOCUMENT_NAME = re.compile(r"(?<![\w.-])([A-Z][A-Z0-9_-]*\.md)\b")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def repository_files() -> list[Path]:
    """Every file of the repository: tracked, or new and not ignored (git's view)."""
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [ROOT / name for name in listed.split("\0") if name]
    else:
        paths = [p for p in ROOT.rglob("*") if not IGNORED_DIRS & set(p.relative_to(ROOT).parts)]
    return sorted(
        p for p in paths if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)
    )


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def links(markdown: str) -> list[str]:
    """The targets of the inline and reference links, code spans and blocks left out."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


# -- the settings table -------------------------------------------------------------------


def test_operating_md_holds_the_generated_settings_table() -> None:
    script = load_script()
    held = script.embedded_table((DOCS / "operating.md").read_text())
    assert held is not None, (
        f"docs/operating.md lacks the markers {script.BEGIN!r} ... {script.END!r}"
    )
    assert held == script.table(), (
        "docs/operating.md's settings table differs from what the settings classes say; "
        "run: .venv/bin/python scripts/settings_table.py --write"
    )


def test_every_setting_has_a_description() -> None:
    script = load_script()
    assert script.missing_descriptions() == [], (
        "settings without a description: give the field a pydantic `description` or add "
        "it to DESCRIPTIONS in scripts/settings_table.py"
    )
    assert script.stale_descriptions() == [], (
        "DESCRIPTIONS in scripts/settings_table.py names settings that no longer exist"
    )


# -- links ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_to_files_of_the_repository(page: Path) -> None:
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in links(page.read_text()):
        if target.startswith(("#", "//")) or SCHEME.match(target):
            continue  # an anchor of the page itself, or another site
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not path:
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
    assert broken == [], f"{page.relative_to(ROOT)}: broken links: {broken}"


# -- nothing points outside the repository --------------------------------------------------


def _mentions(pattern: re.Pattern[str], allowed: set[str] | None = None) -> list[str]:
    found = []
    for path in repository_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for match in pattern.finditer(line):
                name = match.group(match.lastindex or 0)
                if allowed is not None and name in allowed:
                    continue
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_no_file_points_to_the_folder_beside_the_repository() -> None:
    found = _mentions(OUTSIDE_FOLDER)
    assert found == [], (
        "these lines point to documents outside the repository; point to docs/ instead:\n"
        + "\n".join(found)
    )


def test_documents_named_in_capitals_are_files_of_the_repository() -> None:
    names = {p.name for p in repository_files()}
    found = _mentions(DOCUMENT_NAME, allowed=names)
    assert found == [], (
        "these lines name documents that are not in the repository (say what they say in "
        "docs/, and point there):\n" + "\n".join(found)
    )
