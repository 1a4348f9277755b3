"""The security tests' fixtures: see writepath.py."""

from __future__ import annotations

import sys
from pathlib import Path

# The helpers sit next to the tests (and the GraphQL tests' client); with importlib import mode the
# folders are not on sys.path by themselves.
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "graphql"))
sys.path.insert(0, str(HERE))

from writepath import stack  # noqa: E402 - a fixture, after the path is set

__all__ = ["stack"]
