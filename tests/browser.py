"""One recipe for the browser tests: Debian's Chromium (never a browser downloaded by Playwright),
launched with the flags that keep it off the network, and polling helpers for live pages.

The ``browser`` fixture (tests/conftest.py) launches it once per test module.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 1600}

requires_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                       reason=f"{CHROMIUM} is absent (Debian: apt-get install chromium)")


def text(page, selector: str) -> str:
    """The first match's visible text, stripped."""
    return page.locator(selector).first.inner_text().strip()


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll ``condition()`` until it is truthy (returned) or ``timeout`` seconds pass (AssertionError).
    Streaming pages fill an element after it appears: wait for the value, never read it once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
