"""The partner report in a real browser: Debian's headless Chromium driven by Playwright for Python.

The browser is Debian's package (`/usr/bin/chromium`), installed by this module's set-up with
apt-get when it is missing (CI runs as root); Playwright never downloads a browser of its own.
The report must open from the file system with no network, load every image, log no console
error, and leave a screenshot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (needs root, as in CI)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("Debian's chromium is missing and this user cannot install it: "
                    "run `sudo apt-get install -y chromium` (the browser test needs /usr/bin/chromium)")
    with FileLock("/tmp/cohesion-chromium-install.lock", timeout=900):
        if not CHROMIUM.exists():
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True,
                           env=env, timeout=900)
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    return ensure_chromium()


def test_the_report_opens_offline_with_every_image_and_no_console_error(demo_run, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    _, summary = demo_run
    report = summary.processed_dir / "outputs" / "report.html"
    errors: list[str] = []
    requests: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate("""() => Array.from(document.images).map(i => ({
                ok: i.complete && i.naturalWidth > 0, alt: i.alt, src: i.src.slice(0, 30)}))""")
            title = page.title()
            page.screenshot(path=str(shot), full_page=False)
            page.emulate_media(media="print")
            pdf_pages = page.pdf(format="A4")  # printing works (Chromium's own PDF)
        finally:
            browser.close()
    assert "Community cohesion indicators" in title
    assert len(images) >= 5
    assert all(i["ok"] for i in images), [i for i in images if not i["ok"]]
    assert all(i["alt"] for i in images) and all(i["src"].startswith("data:image/png") for i in images)
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), [u for u in requests if not u.startswith(("file:", "data:"))]
    assert shot.stat().st_size > 10_000 and len(pdf_pages) > 10_000
