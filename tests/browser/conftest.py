"""Browser fixtures: one real `maip-events serve` per module and one headless Chromium (Debian's, through Playwright's
executable_path; `make test` installs it). A missing browser fails the tests, it never skips them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from console_seeding import JWT_SECRET, TENANTS, make_tenants
from served_stack import ServedStack, served

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def stack() -> Iterator[ServedStack]:
    # Both workers started up front: a worker spawned on demand mid-test stalls its request for seconds on a
    # busy machine. A short webhook retry schedule so a failing endpoint settles quickly.
    with served(MAIP_LOCAL_WORKERS="2", MAIP_LOCAL_PREWARM="2", MAIP_WEBHOOK_RETRY_SCHEDULE="1,1", MAIP_WEBHOOK_TIMEOUT="1",
                MAIP_JWT_SECRET=JWT_SECRET) as running:
        yield running


@pytest.fixture(scope="module")
def tenants(stack) -> dict[str, dict[str, str]]:
    """Request headers of one fresh tenant per test of the module (keys made in one CLI process: each start costs)."""
    return make_tenants(stack, TENANTS)


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an asyncio loop running in this thread until it stops, and the
    rest of the suite runs handlers that call asyncio.run() (Powertools' async batch processor)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the console tests need Debian's chromium. `make test` installs it "
                    "(apt-get install -y chromium), or set CHROMIUM=/path/to/chromium.", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class Console:
    """A browser tab on the console of `stack`, with what the page reported (console errors, CSP violations)."""

    def __init__(self, page, stack: ServedStack):
        self.page, self.stack = page, stack
        self.problems: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.problems.append(message.text))
        page.on("pageerror", lambda error: self.problems.append(str(error)))

    def open(self, hash_part: str = "") -> None:
        self.page.goto(f"{self.stack.url}/console{hash_part}")

    def sign_in(self, headers: dict[str, str], hash_part: str = "") -> None:
        self.open(hash_part)
        self.page.get_by_label("Tenant ID").fill(headers["X-Tenant-ID"])
        self.page.get_by_label("API key", exact=True).fill(headers["X-API-Key"])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.locator("#view-signin").wait_for(state="hidden")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"console-{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture
def console(browser, stack) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    try:
        yield Console(context.new_page(), stack)
    finally:
        context.close()
