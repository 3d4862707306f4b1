"""`python -m pnlib site` (pnlib.site): the executed `ci` notebooks as a static site, read offline in a browser.

One site build for the module (it runs the notebooks not yet executed at `ci` first), under the session's
PNLIB_RUNS_DIR. The browser checks use Debian's Chromium through Playwright, as tests/test_browser.py does,
and skip, saying why, without them; the site itself needs jupyter-server-mathjax (``pip install -e ".[site]"``).
"""
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import ONE_THREAD

from pnlib import __main__ as cli
from pnlib import site as pnsite
from pnlib.config import default_out
from pnlib.runner import notebooks

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


class _Refs(HTMLParser):
    """Every URL a page loads or links to: (tag, attribute, value)."""

    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [(tag, k, v) for k, v in attrs if k in ("src", "href") and v]


def _refs(page: Path) -> list:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.refs


def _run_notebook(path):
    env = {**os.environ, **ONE_THREAD}
    env.pop("MPLBACKEND", None)
    return subprocess.run([sys.executable, "-m", "pnlib", "run-notebooks", "--preset", "ci", "--only", path.name[:2]],
                          env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def site(two_lanes):
    """One site at `ci`; the notebooks tests/test_exercises.py already executed there are reused, and the
    missing ones run first, two at a time: 01-04 in order in one lane (03 trains what 04 loads), the
    others (the shipped models) shared between the lanes."""
    pytest.importorskip("jupyter_server_mathjax", reason=pnsite.NO_MATHJAX)
    missing = [p for p in notebooks() if not (default_out("ci") / p.name).is_file()]
    first, rest = [p for p in missing if p.name[:2] <= "04"], [p for p in missing if p.name[:2] > "04"]
    two_lanes([first + rest[::2], rest[1::2]], _run_notebook)   # what still fails, build_site runs and reports
    return pnsite.build_site("ci")


def test_without_mathjax_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jupyter_server_mathjax", None)  # import fails: not installed
    assert cli.main(["site", "--preset", "ci"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {pnsite.NO_MATHJAX}"
    assert 'pip install -e ".[site]"' in pnsite.NO_MATHJAX


def test_the_site_lands_in_the_runs_folder_with_a_page_per_notebook(site):
    assert site == default_out("ci") / "site" / "index.html"
    names = [p.stem for p in notebooks()]
    assert len(names) == 7
    for name in names + ["results"]:
        assert (site.parent / f"{name}.html").is_file(), name
    index = site.read_text(encoding="utf-8")
    links = [v for tag, k, v in _refs(site) if tag == "a" and v.endswith(".html") and v != "index.html"]
    assert links[:8] == [f"{n}.html" for n in names] + ["results.html"]  # in order, the results last
    assert "01 · Colour augmentation" in index  # a title is the notebook's first heading


def test_every_page_loads_nothing_from_the_network_and_links_relatively(site):
    """Scripts, styles and images come from the site folder (or data: URIs); links between pages are relative."""
    for page in site.parent.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        for tag, _, value in _refs(page):
            if tag in ("script", "link", "img") or value.endswith(".html"):
                assert value.startswith("data:") or not re.match(r"([a-z]+:|/)", value), (page.name, tag, value)
        assert not re.search(r"url\(\s*['\"]?https?:", html), page.name  # no CSS font or image from a CDN
        assert "cdnjs" not in html and "unpkg" not in html, page.name


def _browser():
    """Playwright's sync API, or a skip saying what is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _open(p, url: str):
    """A headless Chromium page at ``url``, recording every request; (browser, page, requests)."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, timeout=60_000)
    return browser, page, requests


def _typeset(page) -> None:
    """Until MathJax has typeset the page (its "End" startup hook: after the first typesetting pass)."""
    page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.Register", timeout=60_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Register.StartupHook('End', () => done(true)))")


def _local(urls: list) -> list:
    """The requests that left file:// (data: URIs and MathJax's about:blank font probe stay inside)."""
    return [u for u in urls if not u.startswith(("file://", "data:", "about:"))]


def test_every_link_of_the_index_opens_a_page(site):
    api = _browser()
    with api.sync_playwright() as p:
        browser, page, requests = _open(p, site.as_uri())
        try:
            _typeset(page)
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
            assert len([h for h in hrefs if h.endswith(".html")]) >= 8
            for href in hrefs:
                assert href.startswith("file://"), href
                assert Path(unquote(urlparse(href).path)).is_file(), href
            text = page.inner_text("body")
            assert "preset ci" in text and f"commit {pnsite.git_commit()}" in text
            assert not _local(requests), _local(requests)
        finally:
            browser.close()


def test_a_notebook_page_shows_its_figures_and_equations_offline(site):
    api = _browser()
    page_path = site.parent / "01_color_augmentation.html"
    with api.sync_playwright() as p:
        browser, page, requests = _open(p, page_path.as_uri())
        try:
            _typeset(page)
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
            images = page.evaluate("Array.from(document.images).map(i => [i.src.slice(0, 60), i.naturalWidth])")
            assert len(images) >= 3, images  # the notebook's plots and the Markdown's figures
            assert all(w > 0 for _, w in images), [src for src, w in images if not w]
            assert page.locator(".MathJax_Display").count() >= 1 and page.locator(".MathJax").count() >= 10
            assert page.locator(".MathJax_Error, merror").count() == 0
            fonts = page.evaluate("Array.from(document.fonts).filter(f => f.status === 'loaded').map(f => f.family)")
            assert any(f.startswith("STIXMathJax") for f in fonts), fonts  # MathJax's web fonts, from the site
            cells = page.eval_on_selector_all(".jp-MarkdownCell", "els => els.map(e => e.innerText)")
            assert not [c for c in cells if "$$" in c or re.search(r"\$[^$\s][^$]*\$", c)], "raw TeX left"
            text = page.inner_text("body")
            assert "preset ci" in text and f"commit {pnsite.git_commit()}" in text
            assert not _local(requests), _local(requests)
        finally:
            browser.close()
