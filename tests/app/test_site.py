"""The tutorial site (`make docs`, ulib/app/site.py): it builds, reads offline, and in headless Chromium a notebook
page shows its figures and its equations typeset.

The site is built here from a small docs folder: notebook 03's executed copy (figures, display equations) and a
notebook made here in the style of the exercises (inline and \\tag{N} equations, a <details> solution holding a
fenced code block and an equation, a link to notebook 03, a widget output), so the build takes seconds.
ULIB_SITE=site checks a site built by `make docs` instead, and with ULIB_SAVE_SCREENSHOT=1 copies its screenshot of
notebook 03 to docs/images/site_03_absorbing_prior.png (how the README's picture was taken).

The browser tests (marker `browser`) drive Debian's Chromium through Playwright, as tests/app/test_browser.py does:
skipped without it, failing under CI=true.
"""
import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import tomllib
from mkdocs.config import load_config
from mkdocs.exceptions import PluginError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from ulib.app import site as ulib_site

from helpers import CHROMIUM_FLAGS, ROOT

DOCS = ROOT / "docs" / "notebooks"
NOTEBOOK = "03_absorbing_prior"  # figures and display equations
SCREENSHOT = ROOT / "docs" / "images" / f"site_{NOTEBOOK}.png"
SHOT_SIZE = {"width": 1280, "height": 1180}
TIMEOUT_MS = 60_000
EXERCISE = r"""# 99 · Exercises

Inline maths $q(x_t \mid x_0)$ and a numbered display:

$$\mathcal{L} = \sum_{t=1}^{T} \frac{1}{t}\, \mathbb{E}_{q(x_t \mid x_0)}\big[\text{CE}(x_0, x_t)\big] \tag{4}$$

Back to [the prior's training curves](03_absorbing_prior.ipynb#Training-curves).

**Exercise 1.** Mask a grid at t = T/2 and count the masked tokens.

<details><summary>Solution</summary>

```python
x_t = q_sample(x0, t=T // 2, T=T, mask_id=K)
share = (x_t == K).float().mean()
```

The expected share is $t/T$:

$$\mathbb{E}\big[\#\{i : [x_t]_i = m\}\big] = L\,\frac{t}{T} \tag{5}$$

</details>
"""


def exercise_notebook(path: Path) -> None:
    """A notebook in the style of the exercises: EXERCISE's Markdown, a code cell, a widget's output."""
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "m0", "version_major": 2, "version_minor": 0},
            "text/plain": "VBox()"}
    model = {"model_name": "VBoxModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
             "state": {}}
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"m0": model}, "version_major": 2,
                                                           "version_minor": 0}}
    nb = new_notebook(cells=[
        new_markdown_cell(EXERCISE),
        new_code_cell("print(1 + 1)", execution_count=1, outputs=[new_output("stream", name="stdout", text="2\n")]),
        new_code_cell("pg", execution_count=2, outputs=[new_output("display_data", data=view)]),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                 "widgets": state})
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(site folder, its notebooks' page names in order): $ULIB_SITE, or a site built here from a small docs folder."""
    if os.environ.get("ULIB_SITE"):
        path = (ROOT / os.environ["ULIB_SITE"]).resolve()
        assert (path / f"{NOTEBOOK}.html").exists(), f"ULIB_SITE={path} holds no {NOTEBOOK}.html (run `make docs`)"
        return path, [p.stem + ".html" for p in sorted(DOCS.glob("[0-9][0-9]_*.ipynb"))]
    docs = tmp_path_factory.mktemp("site") / "docs"
    docs.mkdir()
    shutil.copyfile(DOCS / f"{NOTEBOOK}.ipynb", docs / f"{NOTEBOOK}.ipynb")
    exercise_notebook(docs / "99_exercises.ipynb")
    (docs / "README.md").write_text(f"# Executed notebooks\n\n[03]({NOTEBOOK}.ipynb) and [99](99_exercises.ipynb)\n")
    site = docs.parent / "site"
    seconds = ulib_site.build(site, docs_dir=docs)
    print(f"site of 2 notebooks built in {seconds:.1f} s")
    return site, [f"{NOTEBOOK}.html", "99_exercises.html"]


# ---- without a browser ---------------------------------------------------------------------------------
def test_navigation_lists_every_executed_notebook_in_order():
    cfg = load_config(str(ulib_site.MKDOCS_YML))
    assert Path(cfg.docs_dir) == DOCS and Path(cfg.site_dir) == ROOT / "site"
    names = sorted(p.name for p in DOCS.glob("[0-9][0-9]_*.ipynb"))
    assert len(names) >= 13
    nav = ulib_site.on_config(cfg).nav
    assert nav == [{"Home": "README.md"}, {"Notebooks": names}, {"Results": "results/README.md"}]
    assert (DOCS / "README.md").exists() and (DOCS / "results" / "README.md").exists()


def test_site_builds_offline(built):
    site, pages = built
    assert ulib_site.offline_problems(site) == []
    for page in ["index.html", *pages]:
        text = (site / page).read_text()
        assert "cdnjs" not in text and "unpkg" not in text and "jsdelivr" not in text, page
        assert 'src="assets/mathjax/tex-chtml-full.js"' in text or page == "index.html", page
    assert (site / ulib_site.MATHJAX_SITE / "tex-chtml-full.js").stat().st_size > 1_000_000
    assert list((site / ulib_site.MATHJAX_SITE / "output/chtml/fonts/woff-v2").glob("*.woff"))
    if "99_exercises.html" in pages:
        text = (site / "99_exercises.html").read_text()
        assert 'href="03_absorbing_prior.html#Training-curves"' in text  # the notebook link leads to its page
        assert "ulib-widget-note" in text and 'type="application/vnd.jupyter.widget-view+json"' not in text


def test_offline_check_finds_what_a_page_would_fetch(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "page.html").write_text("""<html><head>
<script src="https://cdn.example.org/x.js"></script>
<link rel="stylesheet" href="//fonts.example.com/css">
<link rel="canonical" href="https://example.org/page">
<script src="assets/local.js"></script>
<script>import("https://cdn.example.org/m.mjs"); var ns = "http://www.w3.org/2000/svg";</script>
</head><body style="background: url(https://example.org/bg.png)">
<a href="https://example.org/read-more">a link a reader clicks</a><img src="data:image/png;base64,AAAA">
<img srcset="https://example.org/i.png 2x, local.png 1x"></body></html>""")
    (tmp_path / "style.css").write_text("@import 'https://example.org/a.css';\nb { src: url('fonts/local.woff') }")
    found = ulib_site.offline_problems(tmp_path)
    assert found == ["a/page.html: https://cdn.example.org/x.js", "a/page.html: //fonts.example.com/css",
                     "a/page.html: https://cdn.example.org/m.mjs", "a/page.html: https://example.org/bg.png",
                     "a/page.html: https://example.org/i.png", "style.css: https://example.org/a.css"]


def test_page_content_swaps_nbconvert_cdns_and_warns_of_raw_fences(caplog):
    page = SimpleNamespace(file=SimpleNamespace(src_uri="sub/05_x.ipynb"), url="sub/05_x.html")
    html = ("<!-- Load mathjax --><script src=\"https://cdnjs.example/MathJax.js\"></script>"
            "<!-- End of mathjax configuration -->"
            "<script type=\"module\">const m = await import('https://cdn/mermaid.esm.min.mjs');</script>"
            "<div>\n```python\nx = 1\n```\n</div>")
    out = ulib_site.on_page_content(html, page, None, None)
    assert "https://" not in out and "window.MathJax" in out
    assert '<script src="../assets/mathjax/tex-chtml-full.js">' in out  # relative to the page
    assert "a ``` fence is shown as text" in caplog.text and "sub/05_x.ipynb" in caplog.text
    with pytest.raises(PluginError, match="no MathJax block"):
        ulib_site.on_page_content("<p>no script</p>", page, None, None)


def test_only_picks_notebooks_by_number_and_refuses_unknown_ones(tmp_path):
    with pytest.raises(ValueError, match=r"--only \['77'\]: no such notebook; allowed: \['01_quickstart'"):
        ulib_site.build(tmp_path / "site", only=["77"])
    assert not (tmp_path / "site").exists()


# ---- in headless Chromium ------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(built):
    """The site over HTTP on 127.0.0.1 (a free port), as a reader's `python -m http.server` serves it."""
    site, pages = built
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                              env=dict(os.environ, HOME=str(home)))
        yield b
        b.close()


@pytest.fixture
def page(browser, served):
    """A fresh page that may fetch from the site only: anything else is refused and recorded in page.outside,
    answers of 400 and more in page.failed."""
    base, _ = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.outside, pg.failed, pg.errors = [], [], []

    def route(r):
        if r.request.url.startswith(base):
            return r.continue_()
        pg.outside.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    pg.on("response", lambda resp: resp.status >= 400 and pg.failed.append(f"{resp.status} {resp.url}"))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


TYPESET = "async () => { await MathJax.startup.promise; return document.querySelectorAll('mjx-container').length; }"
MARKDOWN_TEXT = "() => [...document.querySelectorAll('.jp-RenderedMarkdown')].map(e => e.innerText).join('\\n')"
FIGURES = """() => [...document.querySelectorAll('.jp-OutputArea-output img')]
    .map(i => ({complete: i.complete, width: i.naturalWidth}))"""


def _check_typeset(pg) -> str:
    """Waits for MathJax; asserts no TeX error and no TeX source left in the Markdown's text; returns that text."""
    pg.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    assert pg.evaluate(TYPESET) > 0, "MathJax typeset nothing"
    assert pg.locator("mjx-merror").count() == 0, "MathJax reported a TeX error"
    text = pg.evaluate(MARKDOWN_TEXT)
    for raw in ("$$", "\\tag{", "\\frac", "\\sum", "\\mathbb"):
        assert raw not in text, f"TeX source {raw!r} is showing in the page"
    return text


@pytest.mark.browser
def test_a_notebook_page_shows_its_figures_and_typeset_equations(page, served, tmp_path):
    base, pages = served
    page.goto(f"{base}/{NOTEBOOK}.html")
    # (b) the equations: every display equation of the notebook's Markdown typeset
    source = nbformat.read(DOCS / f"{NOTEBOOK}.ipynb", as_version=4)
    displays = sum(c.source.count("$$") for c in source.cells if c.cell_type == "markdown") // 2
    assert displays >= 1
    _check_typeset(page)
    assert page.locator('mjx-container[display="true"]').count() == displays
    # (a) the figures: every PNG output shown, decoded (naturalWidth > 0)
    pngs = sum("image/png" in o.get("data", {}) for c in source.cells if c.cell_type == "code" for o in c.outputs)
    page.wait_for_function(FIGURES.replace("\n", "") + ".every(i => i.complete)")
    figures = page.evaluate(FIGURES)
    assert len(figures) == pngs >= 1 and all(f["width"] > 0 for f in figures), figures
    # the navigation: the notebooks in order
    links = page.locator("nav.md-nav--primary a.md-nav__link[href$='.html']").evaluate_all(
        "as => as.map(a => a.getAttribute('href').split('/').pop())")
    assert [p for p in links if p in pages] == pages, links
    assert not page.outside and not page.failed and not page.errors, (page.outside, page.failed, page.errors)

    # a screenshot with an equation and a figure: from the ELBO's heading (under the page's fixed header) to the
    # figure of its weights
    page.set_viewport_size(SHOT_SIZE)
    page.evaluate("""() => {
        const h = [...document.querySelectorAll('h2')].find(h => h.textContent.startsWith('The ELBO'));
        if (h) { h.scrollIntoView(); window.scrollBy(0, -56); }
    }""")
    page.wait_for_timeout(300)
    shot = tmp_path / f"site_{NOTEBOOK}.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as im:
        assert im.size == (SHOT_SIZE["width"], SHOT_SIZE["height"])
        if os.environ.get("ULIB_SAVE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            im.convert("RGB").quantize(colors=128).save(SCREENSHOT, optimize=True)  # ~100 KB, not ~400


@pytest.mark.browser
def test_an_exercise_solution_opens_with_its_code_and_equations(page, served):
    base, pages = served
    if "99_exercises.html" not in pages:
        pytest.skip("ULIB_SITE's notebooks hold no made-up exercise page")
    page.goto(f"{base}/99_exercises.html")
    text = _check_typeset(page)
    assert "Exercise 1." in text
    solution = page.locator("details").filter(has_text="Solution")
    code = solution.locator("pre", has_text="q_sample(x0")
    assert not code.is_visible()  # closed until the reader asks
    solution.locator("summary").click()
    code.wait_for(state="visible")
    assert "```" not in solution.inner_text(), "the fence was shown as text, not as code"
    assert solution.locator("mjx-container").count() == 2  # $t/T$ and the tagged display
    tags = page.locator("mjx-labels [id^='mjx-eqn']").evaluate_all("es => es.map(e => e.id)")
    assert tags == ["mjx-eqn:4", "mjx-eqn:5"], tags  # \tag{4} and \tag{5}, typeset as equation labels
    assert "$" not in solution.inner_text() and "\\tag{" not in solution.inner_text()
    assert page.locator(".ulib-widget-note").is_visible()
    page.locator("a", has_text="the prior's training curves").click()
    page.wait_for_url(f"{base}/{NOTEBOOK}.html#Training-curves")
    assert not page.outside and not page.failed and not page.errors, (page.outside, page.failed, page.errors)


def test_make_docs_builds_the_site_and_make_test_installs_what_it_needs():
    make = (ROOT / "Makefile").read_text()
    m = re.search(r"^docs:.*\n\t(.+)$", make, re.M)
    assert m and "-m ulib.app.site --out site" in m.group(1)
    assert "site" in {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.fullmatch(r"ulib\[[a-z,]*\bdocs\b[a-z,]*\]", d) for d in extras["dev"])  # make test: .[dev]
    assert {re.split(r"[=<> ]", d)[0] for d in extras["docs"]} >= {"mkdocs", "mkdocs-material", "mkdocs-jupyter",
                                                                 "django-static-mathjax"}
