"""The built HTML book in a real browser: every page loads without errors, every image and
same-origin resource loads, every internal link (and #fragment) has a target.

The book is built once per session (``built_book`` in conftest.py), served on a loopback
port, and every page is opened in headless Chromium through Playwright's sync API, using
Debian's ``/usr/bin/chromium`` (``DLBIO_CHROMIUM`` overrides the path; no Playwright browser
download is needed). The test is offline: requests to other hosts are blocked and reported,
never made; ``<a href>`` links to other sites are not followed.

Without Chromium or Playwright the tests skip with the reason, except in CI (``CI=true``),
where they fail: ``.ci/run`` installs Chromium. Screenshots of the landing page (whole, and
its first screen in a 1280 x 900 window, which must hold how to start and every chapter's
card) and of chapter 2 go to ``test-artifacts/`` at the repository root
(``DLBIO_TEST_ARTIFACTS`` overrides it), with a report of what each page requested.
"""
from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from dlbio_teach.mirror import serve_mirror

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
# Whole pages, except the first screen of the landing page (what a newcomer sees first).
SCREENSHOTS = {"landing": "index.html", "landing-first-screen": "book/intro.html",
               "chapter-2": "notebooks/02_restoration.html"}
FULL_PAGE = {"landing", "chapter-2"}

# Wait for every image of the page (lazy ones made eager) to load or fail, then report them.
IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  for (const img of images) { if (img.loading === "lazy") img.loading = "eager"; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
    setTimeout(done, 15000);
  })));
  return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}"""
LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]'), a => a.href)"
# Formulas on the page (Sphinx wraps them in .math) and those MathJax has typeset.
MATH_JS = """() => ({formulas: document.querySelectorAll('.math').length,
                    typeset: document.querySelectorAll('mjx-container').length})"""
IDS_JS = """() => Array.from(document.querySelectorAll('[id]'), e => e.id).concat(
  Array.from(document.querySelectorAll('a[name]'), a => a.name))"""
# Where the landing page's blocks lie in the window, before any scrolling.
LANDING_JS = """() => {
  const box = e => { const r = e.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  return {window: {width: window.innerWidth, height: window.innerHeight},
          start: Array.from(document.querySelectorAll('.landing-start'), box),
          cards: Array.from(document.querySelectorAll('.landing-chapters .sd-card'), c => ({
            title: (c.querySelector('.sd-card-title') || c).textContent.trim(),
            image: (c.querySelector('img') || {}).naturalWidth || 0, ...box(c)}))};
}"""
LANDING = "book/intro.html"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str):
    """Fail in CI, where the browser is part of the setup; skip elsewhere."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: .ci/run installs Debian's chromium; the browser "
                    "test must run in CI)")
    pytest.skip(reason)


def _chromium() -> str | None:
    for candidate in (os.environ.get("DLBIO_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("DLBIO_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _Ids(HTMLParser):
    """The ids (and ``<a name>``) of a page that the crawl did not open in the browser."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if value and (key == "id" or (tag == "a" and key == "name")):
                self.ids.add(value)


@dataclass
class Crawl:
    """What loading every page of the book in the browser found."""

    base: str
    html: Path
    pages: list = field(default_factory=list)            # relative paths opened
    console_errors: list = field(default_factory=list)   # (page, message)
    failed_requests: list = field(default_factory=list)  # (page, url, status or failure)
    broken_images: list = field(default_factory=list)    # (page, src)
    external: dict = field(default_factory=dict)         # url -> pages that asked for it
    links: dict = field(default_factory=dict)            # page -> resolved hrefs
    ids: dict = field(default_factory=dict)              # served path -> ids in the DOM
    screenshots: dict = field(default_factory=dict)      # name -> file
    landing: dict = field(default_factory=dict)          # LANDING_JS on the landing page
    math: dict = field(default_factory=dict)             # page -> {formulas, typeset}

    def is_internal(self, url: str) -> bool:
        return url == self.base or url.startswith(self.base + "/")

    def served_path(self, url: str) -> str:
        """The file under the HTML folder that ``url`` (same origin) is answered with."""
        path = unquote(urlsplit(url).path).lstrip("/")
        return path + "index.html" if path == "" or path.endswith("/") else path

    def ids_of(self, path: str) -> set:
        if path not in self.ids:
            parser = _Ids()
            parser.feed((self.html / path).read_text(encoding="utf-8", errors="replace"))
            self.ids[path] = parser.ids
        return self.ids[path]


def _book_pages(html: Path) -> list[str]:
    """Every HTML page of the build (the theme's own template snippets excluded)."""
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


def _open(context, crawl: Crawl, name: str):
    page = context.new_page()
    blocked = set()

    def on_console(msg):
        if msg.type != "error":
            return
        # A resource we blocked (another host) is reported as external, not as an error.
        if (msg.location or {}).get("url", "") in blocked:
            return
        crawl.console_errors.append((name, msg.text))

    def on_response(response):
        if crawl.is_internal(response.url) and response.status >= 400:
            crawl.failed_requests.append((name, response.url, response.status))

    def on_request_failed(request):
        if crawl.is_internal(request.url):
            crawl.failed_requests.append((name, request.url, request.failure))

    def on_route(route):
        url = route.request.url
        if crawl.is_internal(url):
            route.continue_()
        else:
            blocked.add(url)
            crawl.external.setdefault(url, set()).add(name)
            route.abort("blockedbyclient")

    page.on("console", on_console)
    page.on("pageerror", lambda err: crawl.console_errors.append((name, f"page error: {err}")))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.route("**/*", on_route)
    page.goto(f"{crawl.base}/{name}", wait_until="load")
    try:
        page.wait_for_load_state("networkidle", timeout=10_000)
    except Exception:   # a page that keeps polling: check what it has
        pass
    return page


def _inspect(page, crawl: Crawl, name: str) -> None:
    for attempt in range(3):
        try:
            images = page.evaluate(IMAGES_JS)
            links = page.evaluate(LINKS_JS)
            ids = page.evaluate(IDS_JS)
            break
        except Exception:   # a redirect (index.html) replaced the page: wait and retry
            if attempt == 2:
                raise
            page.wait_for_load_state("load")
    for image in images:
        if image["width"] == 0 and crawl.is_internal(image["src"]):
            crawl.broken_images.append((name, image["src"]))
    crawl.links[name] = links
    crawl.math[name] = page.evaluate(MATH_JS)
    crawl.ids[crawl.served_path(page.url)] = set(ids)


@pytest.fixture(scope="module")
def crawl(built_book, pytestconfig) -> Crawl:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[dev]')")
    chromium = _chromium()
    if chromium is None:
        _unavailable("Chromium not found at /usr/bin/chromium (apt-get install chromium; "
                     "or set DLBIO_CHROMIUM)")
    html = built_book.html
    if not (html / "index.html").is_file():
        pytest.fail("the book build produced no HTML; see test_book_builds_without_warnings:"
                    f"\n{built_book.log[-3000:]}")
    base, server = serve_mirror(html)
    result = Crawl(base=base, html=html)
    out = artifacts_dir()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            try:
                for name in _book_pages(html):
                    page = _open(context, result, name)
                    _inspect(page, result, name)
                    if name == LANDING:
                        page.evaluate("window.scrollTo(0, 0)")
                        result.landing = page.evaluate(LANDING_JS)
                    result.pages.append(name)
                    for shot, target in SCREENSHOTS.items():
                        if name == target:
                            path = out / f"book-{shot}.png"
                            page.screenshot(path=str(path), full_page=shot in FULL_PAGE)
                            result.screenshots[shot] = path
                    page.close()
            finally:
                context.close()
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    report = [f"Pages opened ({len(result.pages)}): {', '.join(result.pages)}",
              "Requests to other hosts (blocked; the test is offline):"]
    report += [f"  {url}  <- {', '.join(sorted(pages))}"
               for url, pages in sorted(result.external.items())] or ["  none"]
    report += [f"Screenshot {k}: {v}" for k, v in result.screenshots.items()]
    (out / "book-browser-report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n" + "\n".join(report) + f"\nReport: {out / 'book-browser-report.txt'}")
    if not hasattr(pytestconfig, "dlbio_summary"):
        pytestconfig.dlbio_summary = []
    pytestconfig.dlbio_summary.append(
        f"Book browser test: screenshots and report in {out}")
    if result.external:
        warnings.warn("the book asked for other hosts (blocked in this offline test): "
                      + ", ".join(sorted(result.external)), stacklevel=1)
    return result


def _listing(rows) -> str:
    return "\n".join("  " + " | ".join(map(str, row)) for row in rows)


def test_every_page_was_opened(crawl):
    assert "index.html" in crawl.pages and "book/intro.html" in crawl.pages
    chapters = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
    for stem in chapters:
        if (crawl.html / "notebooks" / f"{stem}.html").is_file():
            assert f"notebooks/{stem}.html" in crawl.pages


def test_no_console_errors(crawl):
    assert not crawl.console_errors, (
        "console errors or uncaught exceptions (page | message):\n"
        + _listing(crawl.console_errors))


def test_no_failed_requests(crawl):
    assert not crawl.failed_requests, (
        "same-origin requests that failed (page | url | status):\n"
        + _listing(crawl.failed_requests))


def test_every_image_loaded(crawl):
    assert not crawl.broken_images, (
        "images that did not load (naturalWidth 0) (page | src):\n"
        + _listing(crawl.broken_images))


def test_internal_links_resolve(crawl):
    broken = []
    for page, hrefs in crawl.links.items():
        for href in hrefs:
            if not crawl.is_internal(href):
                continue   # other sites and schemes: not followed offline
            path = crawl.served_path(href)
            target = crawl.html / path
            if not target.is_file():
                broken.append((page, href, f"no file {path}"))
                continue
            fragment = unquote(urlsplit(href).fragment)
            if fragment and target.suffix == ".html" and fragment not in crawl.ids_of(path):
                broken.append((page, href, f"no id {fragment!r} in {path}"))
    assert not broken, "broken internal links (page | href | problem):\n" + _listing(broken)


def test_screenshots_saved(crawl):
    for shot in SCREENSHOTS:
        path = crawl.screenshots.get(shot)
        assert path is not None and path.is_file() and path.stat().st_size > 10_000, shot


def test_formulas_are_typeset_offline(crawl):
    """MathJax ships with the book (book/_static/mathjax): formulas render with no network."""
    with_math = {page: m for page, m in crawl.math.items() if m["formulas"]}
    assert with_math, "no page with formulas was found; the check would be empty"
    untypeset = [(page, m["formulas"], m["typeset"]) for page, m in with_math.items()
                 if m["typeset"] < m["formulas"]]
    assert not untypeset, ("formulas left as raw TeX (page | formulas | typeset):\n"
                           + _listing(untypeset))
    assert not [url for url in crawl.external if "mathjax" in url.lower()], crawl.external


def test_landing_first_screen_holds_how_to_start_and_every_chapter(crawl):
    """At 1280 x 900, the landing page shows, without scrolling, how to start and a card
    for each chapter with its figure (and the card that leads to how the course works)."""
    landing = crawl.landing
    assert landing, f"{LANDING} was not inspected"
    chapters = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    cards = landing["cards"]
    assert len(cards) == len(chapters) + 1, [c["title"] for c in cards]
    height, width = landing["window"]["height"], landing["window"]["width"]
    assert (height, width) == (VIEWPORT["height"], VIEWPORT["width"]), landing["window"]
    below = [(c["title"], round(c["bottom"])) for c in cards
             if c["bottom"] > height or c["right"] > width]
    shot = crawl.screenshots.get("landing-first-screen")
    assert not below, (f"cards not wholly on the first screen ({width} x {height}; "
                       f"title | bottom): {below}; see {shot}")
    assert all(c["image"] > 0 for c in cards[:len(chapters)]), cards
    start = landing["start"]
    assert start and all(b["bottom"] <= height for b in start), (start, shot)
