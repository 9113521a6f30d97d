"""The rendered book in a real headless Chromium: math typeset, figures loaded,
widgets rendered, and nothing fetched from outside the book.

Needs a built book (``DINOSAL_HTML`` names its html folder; ``make test`` and
``make check-html`` set it) and Debian's chromium + chromedriver (installed by
those make targets).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

HTML = os.environ.get("DINOSAL_HTML")
pytestmark = pytest.mark.skipif(
    not HTML, reason="set DINOSAL_HTML to a built book (make test / make check-html do)"
)


@pytest.fixture(scope="module")
def site():
    root = Path(HTML)
    assert (root / "index.html").exists(), f"no built book at {root}"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "Debian's chromium and chromium-driver are needed (make chromium)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _pages(root: Path) -> list[str]:
    skip = {"genindex.html", "search.html"}
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*.html")
        if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts
    )


def _settle(drv, script: str, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout).until(lambda d: d.execute_script(script))


MATH_DONE = """
const n = document.querySelectorAll('.math').length;
if (n === 0) return 'none';
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return false;
return document.querySelectorAll('mjx-container').length >= n ? 'typeset' : false;
"""
IMAGES_DONE = """
const imgs = Array.from(document.images);
return imgs.every(i => i.complete) ? {images: imgs.map(i => [i.src, i.naturalWidth])} : false;
"""
WIDGETS_DONE = """
const state = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
if (!state) return 'none';
return document.querySelectorAll('.jupyter-widgets, .widget-container, .widget-inline-hbox').length > 0 ? 'rendered' : false;
"""


def test_every_page_renders_offline(site, browser):
    root, base = site
    pages = _pages(root)
    assert "index.html" in pages or any(p.endswith("intro.html") for p in pages)
    seen = {"math": 0, "images": 0, "widgets": 0}
    for page in pages:
        browser.get(f"{base}/{page}")
        math = _settle(browser, MATH_DONE)
        seen["math"] += math == "typeset"
        images = _settle(browser, IMAGES_DONE)["images"]
        broken = [src for src, w in images if w == 0]
        assert not broken, f"{page}: images that did not load: {broken}"
        seen["images"] += len(images)
        widgets = _settle(browser, WIDGETS_DONE)
        seen["widgets"] += widgets == "rendered"
        outside = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith(location.origin) && !n.startsWith('data:'))"
        )
        assert not outside, f"{page}: resources requested from outside the book: {outside}"
    assert seen["math"] >= 1, "no page had typeset math"
    assert seen["images"] >= 1, "no page had a figure"
    assert seen["widgets"] >= 1, "no page rendered a widget"
