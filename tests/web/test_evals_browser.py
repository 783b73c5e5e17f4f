"""A brand's evals page in a real headless Chromium against a real gunicorn: a run recorded from
the command line, then "Run now" clicked in the page and made by the scheduler's job
(`appliance jobs run evals.requested`, the same function the scheduler process runs), and the
page shows the result, the trend over both runs and the history.

Lumen Goods' tools point at the session's order system (`retail_backend`) for the test only,
with one small suite; the nightly job's own behaviour is tested in tests/evals/test_history.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eval_support import SUITE
from playwright.sync_api import Page, expect
from retail_support import APPLIANCE, RetailBackend

pytestmark = pytest.mark.browser
#: The session fixture `live_server` (tests/conftest.py LiveServer).
LiveServer = Any
Screenshot = Callable[[Page, str], Path]
BrowserSignIn = Callable[[Page, Any], None]


def _appliance(live_server: LiveServer, *args: str, **env: str) -> str:
    done = subprocess.run([*APPLIANCE, *args], env={**live_server.env, **env},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def lumen_on_test_system(live_server: LiveServer, retail_backend: RetailBackend,
                         tmp_path: Path) -> Iterator[None]:
    """Lumen Goods' tools on the session's order system and its small suite stored; the
    tools go back where the demo seed put them afterwards (the server is shared)."""
    (tmp_path / "cancellations.yaml").write_text(SUITE)
    _appliance(live_server, "eval", "import", "--brand", "lumen-goods", str(tmp_path))
    _appliance(live_server, "demo", "seed", "--no-knowledge",
               APPLIANCE_DEMO_RETAIL_URL=retail_backend.url)
    retail_backend.reset()
    try:
        yield
    finally:
        _appliance(live_server, "demo", "seed", "--no-knowledge")


def test_run_now_is_made_by_the_scheduler_job_and_the_page_shows_the_trend(
        page: Page, live_server: LiveServer, lumen_on_test_system: None,
        browser_sign_in: BrowserSignIn, screenshot: Screenshot,
        retail_backend: RetailBackend) -> None:
    _appliance(live_server, "eval", "run", "--brand", "lumen-goods", "--suite",
               "cancellations", "--record")
    browser_sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/brands/lumen-goods")
    page.get_by_role("link", name="Evals").first.click()
    expect(page.get_by_role("heading", name="Evals · Lumen Goods")).to_be_visible()

    page.get_by_label("Suites").select_option("cancellations")
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_contain_text("queued")
    retail_backend.reset()
    # The scheduler runs with the settings `demo seed` used: the order system is a demo one.
    _appliance(live_server, "jobs", "run", "evals.requested",
               APPLIANCE_DEMO_RETAIL_URL=retail_backend.url)
    page.reload()

    scores = page.locator("#suite-scores")
    expect(page.locator("#latest-run")).to_contain_text("(admin, suite cancellations)")
    expect(scores.get_by_role("row", name="cancellations")).to_contain_text("1.000")
    chart = scores.get_by_role("img", name="pass^1 of cancellations over the last")
    expect(chart).to_have_attribute("aria-label", "pass^1 of cancellations over the last 2 "
                                    "runs: " + ", ".join(
                                        f"run {run}: 1.00" for run in _runs(page)[::-1]))
    expect(page.locator("#history tbody tr")).to_have_count(2)
    expect(page.get_by_text("Every case passed every trial.")).to_be_visible()
    screenshot(page, "evals")


def _runs(page: Page) -> list[str]:
    """The run ids in the history table, newest first."""
    return [cell.strip() for cell in page.locator("#history tbody tr td:first-child")
            .all_text_contents()]
