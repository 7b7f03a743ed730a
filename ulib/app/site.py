"""`make docs`: the executed notebooks of docs/notebooks/ as a static tutorial site that reads offline.

    python -m ulib.app.site                    # every notebook into site/: open site/index.html
    python -m ulib.app.site --out site-03 --only 03   # one notebook and the index

mkdocs with the Material theme and mkdocs-jupyter turns each executed copy into a page as it stands (nothing is
executed): Markdown with its equations, code, and outputs with their PNG figures embedded. The home page is
docs/notebooks/README.md, the navigation lists the numbered notebooks in order, then the results
(docs/notebooks/results/). mkdocs.yml at the repository root holds the configuration and names this file as its
hook, so `mkdocs build` and `mkdocs serve` give the same site:

- on_config: the navigation, from the notebooks present, and a wider page (assets/ulib.css);
- on_page_content: nbconvert's page fragment loads MathJax 2 and Mermaid from CDNs and the widget renderer from
  another; MathJax 3 from the site itself replaces the first, the others are dropped (widget outputs become a
  note: they need a kernel); links to another notebook lead to its page; a button downloads the notebook;
- on_post_build: MathJax 3.2.2's files (from the django-static-mathjax wheel, which needs no Django) are copied
  into the site, and a page or style sheet that would still fetch a script, style, image or font from the
  network fails the build (`offline_problems`).
"""
from __future__ import annotations

import argparse
import html.parser
import logging
import posixpath
import re
import shutil
import sys
import time
from pathlib import Path

import mathjax
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

from ulib.app.reproduce import list_notebooks, select

log = logging.getLogger("mkdocs.hooks.ulib_site")  # mkdocs' own logger tree: `strict` counts its warnings
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding mkdocs.yml (editable install)
MKDOCS_YML = PROJECT_ROOT / "mkdocs.yml"
MATHJAX_ES5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
MATHJAX_FILES = ["tex-chtml-full.js", "output/chtml/fonts/woff-v2"]  # one component holds every TeX package
MATHJAX_SITE = "assets/mathjax"  # where they go in the site
# MathJax 3's settings for notebook Markdown: $...$ inline as Jupyter has it, \tag{N} and AMS numbering.
MATHJAX_CONFIG = """window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  options: {ignoreHtmlClass: "tex2jax_ignore"}
};"""
# nbconvert's fragments to replace (templates base/mathjax.html.j2, lab/mermaidjs.html.j2, base/jupyter_widgets)
NBCONVERT_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
NBCONVERT_MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>", re.S)
NBCONVERT_WIDGETS = re.compile(r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer\(\).*?</script>", re.S)
NOTEBOOK_LINK = re.compile(r'href="([^"#:?]+\.ipynb)(#[^"]*)?"')  # a Markdown link to another notebook
WIDGET_VIEW = re.compile(r"<script type=\"application/vnd\.jupyter\.widget-view\+json\">.*?</script>", re.S)
SITE_CSS = "assets/ulib.css"  # a wider page for code cells and figures
SITE_CSS_TEXT = ".md-grid { max-width: 1440px; }\n"
RAW_FENCE = re.compile(r"^\s*```", re.M)  # a fence Markdown left as text: inside an HTML block (<details>)
# mkdocs-jupyter copies each notebook beside its page (include_source); Material 9 shows no button for it
DOWNLOAD = ('<a href="{href}" download class="md-content__button md-icon" title="Download the executed notebook">'
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path d="M5 20h14v-2H5m14-9h-4V3H9v6H5l7 '
            '7z"/></svg></a>')
WIDGET_NOTE = ('<p class="ulib-widget-note"><em>An interactive widget is shown here when the notebook runs in '
               'JupyterLab (it needs a kernel): open the notebook from <code>notebooks/</code>.</em></p>')


def navigation(names: list[str], results: bool = True) -> list[dict]:
    """The site's navigation: the index, the notebooks in order, the results' index."""
    nav = [{"Home": "README.md"}, {"Notebooks": list(names)}]
    return nav + [{"Results": "results/README.md"}] if results else nav


# ---- mkdocs hooks (mkdocs.yml: hooks: [ulib/app/site.py]) ----------------------------------------------------
def on_config(config):
    config.extra_css.append(SITE_CSS)
    if config.nav is None:
        docs = Path(config.docs_dir)
        config.nav = navigation([p.name for p in list_notebooks(docs)], results=(docs / "results/README.md").exists())
    return config


def on_page_content(html_text, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html_text
    where = f"{page.file.src_uri}: nbconvert's page layout changed; ulib/app/site.py must follow it"
    if not NBCONVERT_MATHJAX.search(html_text):
        raise PluginError(f"{where} (no MathJax block found)")
    script = get_relative_url(f"{MATHJAX_SITE}/{MATHJAX_FILES[0]}", page.url)
    html_text = NBCONVERT_MATHJAX.sub(
        lambda _: f"<script>\n{MATHJAX_CONFIG}\n</script>\n<script src=\"{script}\"></script>", html_text, count=1)
    if 'class="jp-Mermaid' in html_text:
        raise PluginError(f"{page.file.src_uri} has a Mermaid output: the site has no offline Mermaid renderer")
    html_text = NBCONVERT_MERMAID.sub("", html_text)
    html_text = NBCONVERT_WIDGETS.sub("", html_text)
    html_text = WIDGET_VIEW.sub(WIDGET_NOTE, html_text)
    if RAW_FENCE.search(html_text):
        log.warning(f"{page.file.src_uri}: a ``` fence is shown as text: Markdown inside an HTML block such as "
                    "<details> needs a blank line after <summary>...</summary> and before </details>")
    html_text = NOTEBOOK_LINK.sub(lambda m: _page_link(m, page, files), html_text)
    return DOWNLOAD.format(href=get_relative_url(page.file.src_uri, page.url)) + html_text


def _page_link(m: re.Match, page, files) -> str:
    """href="NN_name.ipynb#x" -> that notebook's page (mkdocs rewrites such links in Markdown pages only)."""
    target = files.get_file_from_path(posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri),
                                                                        m.group(1))))
    if target is None or not target.is_documentation_page():
        return m.group(0)
    return f'href="{get_relative_url(target.url, page.url)}{m.group(2) or ""}"'


def on_post_build(config):
    site = Path(config.site_dir)
    target = site / MATHJAX_SITE
    for rel in MATHJAX_FILES:
        src, dst = MATHJAX_ES5 / rel, target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dst)
    shutil.copyfile(MATHJAX_ES5.parent / "LICENSE", target / "LICENSE")
    (site / SITE_CSS).write_text(SITE_CSS_TEXT)
    problems = offline_problems(site)
    if problems:
        raise PluginError("pages that would fetch from the network (the site must read offline):\n  "
                          + "\n  ".join(problems[:20]))


# ---- the offline check -----------------------------------------------------------------------------------
REMOTE = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)<>]*")
NAMESPACE = re.compile(r"https?://www\.w3\.org/")  # XML namespaces in inline SVG code name, never fetch
RESOURCE_ATTRS = {"script": "src", "img": "src", "source": "src", "iframe": "src", "embed": "src", "audio": "src",
                  "video": "src", "track": "src", "object": "data", "link": "href"}
NAVIGATION_RELS = {"canonical", "alternate", "author", "license", "next", "prev", "search"}


class _Resources(html.parser.HTMLParser):
    """Collects the URLs a browser would fetch to show a page: resource attributes, inline scripts and styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls, self._inline = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        attr = RESOURCE_ATTRS.get(tag)
        rels = set((a.get("rel") or "").lower().split())
        if attr and a.get(attr) and not (tag == "link" and rels and rels <= NAVIGATION_RELS):
            self.urls.append(a[attr])
        for srcset in (a.get("srcset"), a.get("imagesrcset")):
            self.urls += [part.split()[0] for part in (srcset or "").split(",") if part.strip()]
        self.urls += REMOTE.findall(a.get("style") or "")
        self._inline = tag if tag in ("script", "style") and not a.get("src") else None

    def handle_endtag(self, tag):
        self._inline = None

    def handle_data(self, data):
        if self._inline:
            self.urls += REMOTE.findall(data)


def offline_problems(site: Path) -> list[str]:
    """'page: URL' for every script, style sheet, image, frame or font a page of `site` (or one of its .css
    files) would fetch from another host; [] when the site reads offline. Links a reader clicks do not count."""
    problems = []
    for path in sorted(Path(site).rglob("*.html")):
        parser = _Resources()
        parser.feed(path.read_text(encoding="utf-8"))
        urls = [u for u in parser.urls if REMOTE.match(u.strip()) and not NAMESPACE.match(u.strip())]
        problems += [f"{path.relative_to(site)}: {u}" for u in urls]
    for path in sorted(Path(site).rglob("*.css")):
        text = path.read_text(encoding="utf-8", errors="replace")
        urls = re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")\s]+)", text)
        urls += re.findall(r"@import\s+['\"]((?:https?:)?//[^'\"]+)", text)
        problems += [f"{path.relative_to(site)}: {u}" for u in urls]
    return problems


# ---- building -------------------------------------------------------------------------------------------
def build(out: Path, only: list[str] | None = None, docs_dir: Path | None = None, config: Path = MKDOCS_YML) -> float:
    """Build the site into `out` (emptied first) from `docs_dir` (default: mkdocs.yml's, docs/notebooks); with
    `only` (['03'], '3' or '03_absorbing_prior'), just those notebooks and the index. Returns the seconds taken."""
    start = time.perf_counter()
    overrides = {"site_dir": str(Path(out).resolve())}
    if docs_dir is not None:
        overrides["docs_dir"] = str(Path(docs_dir).resolve())
    cfg = load_config(str(config), **overrides)
    names = [p.name for p in list_notebooks(Path(cfg.docs_dir))]
    if only:
        keep = [p.name for p in select([Path(n) for n in names], only)]
        cfg = load_config(str(config), **overrides, nav=navigation(keep, results=False),
                          exclude_docs="\n".join([*sorted(set(names) - set(keep)), "results/"]))
    mkdocs_build(cfg)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ulib.app.site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "site", help="where the site goes (emptied)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="just these notebooks (numbers or names)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)-7s -  %(message)s", level=logging.INFO)
    logging.getLogger("traitlets").setLevel(logging.ERROR)  # nbconvert: 'Alternative text is missing' per figure
    try:
        seconds = build(args.out, args.only)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"site built in {seconds:.1f} s: open {args.out}/index.html (the search box needs the folder served: "
          f"`python -m http.server --directory {args.out} 8000`, then http://127.0.0.1:8000/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
