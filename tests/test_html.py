"""The rendered book in a real headless Chromium: math typeset, figures loaded,
widgets rendered, and nothing fetched from outside the book; on every page no
TeX is left unrendered and MathJax reports no error; the tables that cells print
fit the page and show no ``nan`` and no black cell.

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


MISSING: list[str] = []
"""Paths the pages asked the server for that the built book does not have (404)."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the built book quietly and records every request it cannot answer."""

    def log_message(self, *args) -> None:
        pass

    def send_error(self, code, message=None, explain=None):
        if code == 404 and not self.path.endswith("favicon.ico"):  # the browser's own guess, not a page's
            MISSING.append(self.path)
        super().send_error(code, message, explain)


@pytest.fixture(scope="module")
def site():
    root = Path(HTML)
    assert (root / "index.html").exists(), f"no built book at {root}"
    MISSING.clear()
    handler = functools.partial(_Handler, directory=str(root))
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


# TeX that a reader should never see as text: display/inline delimiters and common commands,
# or a pair of dollars holding something inside one text node. Text inside code, listings and
# MathJax's own output is not checked; folded content (solutions) is, since a reader opens it.
RAW_TEX = r"""
const skip = 'pre, code, kbd, samp, script, style, noscript, textarea, mjx-container, mjx-assistive-mml, .MathJax';
const pattern = /\$\$|\\\(|\\\)|\\\[|\\\]|\\(?:frac|tfrac|dfrac|mathrm|mathbf|sum|top|lambda|sqrt|cdot|left|right|begin|end)(?![a-zA-Z])|\$[^$\s][^$]*\$/;
const found = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement;
  if (!el || el.closest(skip)) continue;
  const m = n.textContent.match(pattern);
  if (m) {
    const t = n.textContent.replace(/\s+/g, ' ').trim();
    const at = Math.max(0, t.indexOf(m[0].trim()) - 40);
    found.push(t.slice(at, at + 120));
  }
}
return found;
"""
MATH_ERRORS = """
const errs = Array.from(document.querySelectorAll('mjx-merror, [data-mjx-error], .MathJax_Error'));
return errs.map(e => (e.getAttribute('data-mjx-error') || e.getAttribute('title') || e.textContent || '').trim());
"""
# Tables printed by cells or written in the pages' markdown: wider than the box they scroll in, "nan"-like text, or a dark
# background behind a missing value (pandas paints NaN black in a background gradient).
TABLES = r"""
const out = [];
document.querySelectorAll('.cell_output table, article table').forEach(t => {
  let box = t.parentElement;
  while (box && box.parentElement && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
  const over = Math.round(t.scrollWidth - box.clientWidth);
  const head = Array.from(t.querySelectorAll('thead th')).map(x => x.textContent.trim()).filter(Boolean).slice(0, 3).join(', ');
  if (over > 1) out.push(`table (${head}) is ${over} px wider than the page`);
  t.querySelectorAll('td, th').forEach(c => {
    const text = c.textContent.trim();
    if (/^(nan|NaN|None|<NA>|NaT)$/.test(text)) out.push(`table (${head}) shows "${text}"`);
    const m = getComputedStyle(c).backgroundColor.match(/[\d.]+/g);
    const dark = m && (m.length < 4 || +m[3] > 0.5) && (+m[0] + +m[1] + +m[2]) < 60;
    if (dark && (text === '' || text === '–')) out.push(`table (${head}) has a black cell for a missing value`);
  });
});
return out;
"""
MATH_SETTLED = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { done('no mathjax'); return; }
MathJax.startup.promise.then(() => done('settled'), e => done('failed: ' + e));
"""


def test_every_page_renders_offline(site, browser):
    """Every page: math typeset, figures loaded, widgets rendered, nothing fetched from outside the
    book and nothing asked for that the book lacks (a 404, e.g. the widget manager's fonts)."""
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
    assert not MISSING, f"files the pages asked for and the book does not have: {sorted(set(MISSING))}"
    assert seen["math"] >= 1, "no page had typeset math"
    assert seen["images"] >= 1, "no page had a figure"
    assert seen["widgets"] >= 1, "no page rendered a widget"


def test_no_page_shows_raw_tex_or_a_mathjax_error(site, browser):
    """Every page: no TeX source left in the text a reader sees (``$$``, ``\\(``, ``\\frac``,
    ``\\mathrm``, ``$...$``, ...) outside code, and no MathJax error. All pages are checked and
    every finding is reported at once."""
    root, base = site
    problems = {}
    for page in _pages(root):
        browser.get(f"{base}/{page}")
        _settle(browser, MATH_DONE)
        browser.set_script_timeout(30)
        settled = browser.execute_async_script(MATH_SETTLED)
        found = [f"raw TeX: ...{t}..." for t in browser.execute_script(RAW_TEX)]
        found += [f"MathJax error: {e}" for e in browser.execute_script(MATH_ERRORS)]
        if settled.startswith("failed"):
            found.append(f"MathJax {settled}")
        if found:
            problems[page] = found
    report = "\n".join(f"{page} ({len(f)}):\n  " + "\n  ".join(f) for page, f in problems.items())
    assert not problems, f"unrendered TeX or MathJax errors on {len(problems)} page(s):\n{report}"


def test_printed_tables_fit_the_page_and_mark_missing_values(site, browser):
    """Every table (printed by a cell or written in markdown) fits the page's text column (browser 1400 px wide), shows a missing
    value as '–' (never ``nan``/``None``) and never as a black cell. All pages are checked."""
    root, base = site
    problems = {}
    for page in _pages(root):
        browser.get(f"{base}/{page}")
        found = browser.execute_script(TABLES)
        if found:
            problems[page] = found
    report = "\n".join(f"{page} ({len(f)}):\n  " + "\n  ".join(f) for page, f in problems.items())
    assert not problems, f"tables that do not fit or hide missing values on {len(problems)} page(s):\n{report}"
