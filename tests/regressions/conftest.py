"""tests/regressions: one file per security fix, named after it. Each file's docstring names the
commit and what went wrong (or would go wrong without the guard); its test fails if the fix is
undone. Longer stories of the same behaviour are in tests/integration."""

from __future__ import annotations

import pytest
from support.harness import Harness
from support.scenario import Consented, consented


@pytest.fixture
def world(harness: Harness) -> Consented:
    """A provider's record about PERSON, an agency under agreement, a real-name portal."""
    return consented(harness)
