"""Browser fixtures: the running platform (four services + the development gateway, SQLite and the
embedded bus, free ports), Debian's Chromium driven by Playwright, logins through the consoles' own
user picker, the axe-core accessibility audit and the screenshots for the README.

Chromium is Debian's (`/usr/bin/chromium`, or CRM_CHROMIUM): `make install` installs it when it is
missing and make runs as root; Playwright never downloads a browser here. Without Chromium the
tests are skipped, and with CRM_REQUIRE_SERVERS=1 (CI) they fail instead."""
from __future__ import annotations

import importlib.resources
import os
import shutil
from pathlib import Path

import pytest

from .live_platform import LivePlatform
from .seed import seed

ROOT = Path(__file__).resolve().parents[2]
# `make screenshots` writes them where the README shows them; an ordinary test run writes them
# beside its other output, so `make test` leaves the work tree as it found it
SHOTS = Path(os.environ.get("CRM_SCREENSHOTS_DIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "crm-screenshots")
REQUIRE = os.environ.get("CRM_REQUIRE_SERVERS") == "1"
LAPTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def _missing(what: str):
    if REQUIRE:
        pytest.fail(f"{what} (CRM_REQUIRE_SERVERS=1: run `make install` as root, it installs Debian's chromium)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CRM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        _missing("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (make install)")
    pw = sync_playwright().start()
    # launch() gives every run a fresh, temporary user-data-dir
    b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, browser):
    p = LivePlatform(tmp_path_factory.mktemp("platform")).start()
    try:
        p.data = seed(p.url)
        yield p
    finally:
        p.stop()


# reported by the page itself too (the console message alone names no blocked URI for some kinds)
CSP_WATCH = """document.addEventListener('securitypolicyviolation', (e) =>
  console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));"""


class Console:
    """One browser context (a fresh profile: storage, language) on one console."""

    def __init__(self, browser, platform, console: str, viewport=LAPTOP, lang="en"):
        self.platform, self.console = platform, console
        self.context = browser.new_context(viewport=viewport, locale="en-GB" if lang == "en" else "zh-CN")
        self.context.set_default_timeout(15000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # what the gateway's Content-Security-Policy refused: every console must satisfy it
        self.csp: list[str] = []
        self.page.on("console", self._console)
        self.page.add_init_script(CSP_WATCH)
        # the language the user starts with (a later choice in the page is kept, as for a real user)
        self.page.add_init_script(f"localStorage.getItem('crm.lang') || localStorage.setItem('crm.lang', '{lang}')")

    def _console(self, msg) -> None:
        if msg.type == "error" and ("Content Security Policy" in msg.text or msg.text.startswith("CSP violation")):
            self.csp.append(msg.text)

    def url(self, hash_: str = "") -> str:
        return f"{self.platform.url}/app/{self.console}/{hash_}"

    def open(self, hash_: str = ""):
        self.page.goto(self.url(hash_))
        return self.page

    def login(self, name: str, hash_: str = "#/"):
        self.open(hash_)
        self.page.get_by_role("button", name=f"Log in as {name}").click()
        self.page.get_by_role("button", name="Log out").wait_for()
        return self.page

    def go(self, hash_: str):
        self.page.evaluate("h => { location.hash = h }", hash_)
        self.page.wait_for_load_state()
        return self.page

    def close(self):
        assert not self.errors, f"JavaScript errors in the {self.console} console: {self.errors}"
        assert not self.csp, f"Content-Security-Policy violations in the {self.console} console: {self.csp}"
        self.context.close()


@pytest.fixture
def console(browser, platform):
    opened: list[Console] = []

    def make(name: str, **kw) -> Console:
        c = Console(browser, platform, name, **kw)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


AXE = (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
AXE_DEFINE = f"() => {{ {AXE}\n; return typeof window.axe; }}"


def audit(page, where: str) -> None:
    """axe-core (WCAG 2.x A/AA rules and best practices) on the page as it is now: any serious or
    critical violation fails, with the rule, the help text and the offending elements."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # evaluated through the DevTools protocol: an added <script> tag would be (rightly) refused
        # by the consoles' Content-Security-Policy
        page.evaluate(AXE_DEFINE)
    result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    report = "\n".join(f"- {v['id']} ({v['impact']}): {v['help']}\n    " +
                       "\n    ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5]) for v in bad)
    assert not bad, f"accessibility violations on {where}:\n{report}"


def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)
