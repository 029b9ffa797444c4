"""Where things are: the repository, the bundled course and its assignments."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "reference"
FIXTURES = ROOT / "tests" / "fixtures"
#: The folder of the venv's executables (`autograder`, `pytest`).
BIN = Path(sys.executable).parent

#: The bundled course's assignments, by slug, and their folders.
HW1 = "hw1-training-basics"
HW2 = "hw2-interpretability"
HW1_DIR = REFERENCE / HW1
HW2_DIR = REFERENCE / HW2
ALTERNATIVES = HW1_DIR / "alternatives"
