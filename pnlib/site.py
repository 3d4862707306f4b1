"""`python -m pnlib site`: the executed notebooks as a static website, to read without running anything.

It reads the executed copies that ``python -m pnlib run-notebooks --preset P`` wrote to ``runs/<P>/``
(:func:`pnlib.runner.run_notebooks`; the missing ones are run first) and writes ``runs/<P>/site/``:

- ``index.html``: the notebooks in order, each titled by its first Markdown heading, and the measured results;
- ``NN_name.html``: one page per notebook, code and outputs (figures embedded as data URIs by nbconvert);
- ``results.html``: ``benchmarks/RESULTS.md``, through the same exporter (same tables, same maths);
- ``figures/``: the repository figures the notebooks' Markdown shows (``../figures/x.png`` becomes ``figures/x.png``);
- ``mathjax/``: MathJax 2.7 from the ``jupyter-server-mathjax`` package (``pip install .[site]``).

nbconvert's ``HTMLExporter`` with its ``lab`` template renders the pages; the template below removes what
that template fetches from a CDN (require.js, MermaidJS, the widget manager) and points MathJax at the
local copy, so the site works offline from ``file://``. Every page names the preset and the git commit.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

from .config import FIG_DIR, REPO_ROOT, Stopwatch, default_out
from .runner import notebooks, run_notebooks

#: The one-line error (``error: ...``, exit status 2) without the optional dependency.
NO_MATHJAX = "the site needs MathJax offline: pip install -e \".[site]\" (from the repository)"
#: MathJax 2.7's combined configuration that jupyter-server-mathjax ships: TeX input, HTML-CSS output.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
#: The parts of jupyter-server-mathjax's MathJax the pages use; its SVG output, accessibility extensions
#: and other languages stay out. HTML-CSS draws with the STIX-Web fonts (the only web fonts it ships).
MATHJAX_PARTS = ("MathJax.js", "LICENSE", f"config/{MATHJAX_CONFIG}.js", "config/Safe.js", "extensions",
                 "jax/input", "jax/element", "jax/output/HTML-CSS", "fonts/HTML-CSS/STIX-Web/woff",
                 "localization/en")
RESULTS_MD = REPO_ROOT / "benchmarks" / "RESULTS.md"
#: A Markdown image or HTML ``src`` pointing at the repository's figures/, as the notebooks write them.
FIGURE_LINK = re.compile(r"(\]\(|src=[\"'])\.\./figures/([\w.-]+)")
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="pn-widget"><i>An interactive widget was here: it runs in JupyterLab '
               "(open the notebook there), not in this page.</i></p>")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true},
  displayAlign: "center", messageStyle: "none",
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}}
});
</script>
<script src="{{ resources.site.mathjax }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}
<style type="text/css">
.pn-site {font-family: var(--jp-ui-font-family); font-size: 14px; padding: 8px 12px; margin: 0 0 12px 0;
          background: var(--jp-layout-color2); border-bottom: 1px solid var(--jp-border-color2);}
footer.pn-site {margin: 24px 0 0 0; border-top: 1px solid var(--jp-border-color2); border-bottom: none;}
.pn-site a {margin-right: 1.5em;}
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
<nav class="pn-site">{{ resources.site.top }}</nav>
{%- endblock body_header -%}
{%- block body_footer -%}
{%- if resources.site.bottom %}<footer class="pn-site">{{ resources.site.bottom }}</footer>{% endif %}
{{ super() }}
{%- endblock body_footer -%}
"""


def mathjax_source() -> Path:
    """jupyter-server-mathjax's MathJax 2.7 folder; a FileNotFoundError naming ``pip install .[site]`` without it."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise FileNotFoundError(NO_MATHJAX) from None
    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (static / "MathJax.js").is_file():
        raise FileNotFoundError(NO_MATHJAX)
    return static


def copy_mathjax(static: Path, dest: Path) -> None:
    """The parts of MathJax in :data:`MATHJAX_PARTS`, from ``static`` to ``dest``."""
    for part in MATHJAX_PARTS:
        src, to = static / part, dest / part
        if src.is_dir():
            shutil.copytree(src, to, dirs_exist_ok=True, ignore=shutil.ignore_patterns("a11y"))
        else:
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, to)


def git_commit() -> str:
    """``git rev-parse --short HEAD`` of the repository, or ``"unknown"`` (no git, not a clone)."""
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unknown"


def title_of(nb, default: str) -> str:
    """The text of the notebook's first Markdown heading (``default`` if it has none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (m := HEADING.search(cell.source)):
            return m.group(1)
    return default


def stopped_at_error(nb) -> bool:
    """Whether a cell of the executed notebook ended in an error (papermill stops there)."""
    return any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def static_widgets(nb) -> None:
    """Replace each widget output (its state needs a kernel or a CDN's widget manager) with a note."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if WIDGET in out.get("data", {}):
                out["data"] = {"text/html": WIDGET_NOTE}
    nb.metadata.pop("widgets", None)


def local_figures(nb, site: Path) -> None:
    """Copy the figures the Markdown cells show into ``site/figures/`` and point the links there."""
    def local(m):
        name = m.group(2)
        if not (FIG_DIR / name).is_file():
            return m.group(0)
        (site / "figures").mkdir(parents=True, exist_ok=True)
        shutil.copy2(FIG_DIR / name, site / "figures" / name)
        return f"{m.group(1)}figures/{name}"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = FIGURE_LINK.sub(local, cell.source)


def markdown_notebook(source: str):
    """A notebook of one Markdown cell: the index and RESULTS.md go through the notebooks' exporter."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(source))
    return nb


def exporter():
    """nbconvert's HTMLExporter, ``lab`` template (light theme), with :data:`TEMPLATE` on top."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", theme="light", template_file="pnlib-site.html.j2",
                        extra_loaders=[DictLoader({"pnlib-site.html.j2": TEMPLATE})])


def provenance(preset: str, commit: str, executed: str | None) -> str:
    """The line every page carries: preset, commit and (for a notebook) when papermill ran it."""
    ran = f" · executed {html.escape(executed)}" if executed else ""
    return (f'<a href="index.html">PaletteNet: the notebooks</a>preset <b>{html.escape(preset)}</b> · '
            f"commit <code>{html.escape(commit)}</code>{ran}")


def neighbours(pages: list[tuple[str, str]], k: int) -> str:
    """Links to the index and to the pages before and after page ``k``."""
    links = ['<a href="index.html">index</a>']
    if k > 0:
        links.append(f'<a href="{pages[k - 1][0]}">← {html.escape(pages[k - 1][1])}</a>')
    if k + 1 < len(pages):
        links.append(f'<a href="{pages[k + 1][0]}">{html.escape(pages[k + 1][1])} →</a>')
    return "".join(links)


def index_markdown(preset: str, entries: list[tuple[str, str, bool]]) -> str:
    """The index page's Markdown: one line per page (file, title, whether it stopped at an error)."""
    def link(name, title):
        return f"[{title.replace('[', '&#91;').replace(']', '&#93;')}]({name})"

    n = sum(name != "results.html" for name, _, _ in entries)
    lines = ["# PaletteNet: the notebooks, executed", "",
             f"The {n} notebooks as `python -m pnlib run-notebooks --preset {preset}` ran them, with every "
             "output; to read, not to run. Built by `python -m pnlib site`.", ""]
    lines += [f"- {link(name, title)}" + (" (**stopped at an error**)" if failed else "")
              for name, title, failed in entries if name != "results.html"]
    lines += ["", "## Measured numbers", ""]
    lines += [f"- {link(name, title)} (`benchmarks/RESULTS.md`)"
              for name, title, _ in entries if name == "results.html"]
    return "\n".join(lines) + "\n"


def executed_notebooks(preset: str, src: Path) -> list[tuple[str, str, object]]:
    """(page name, title, notebook) for each executed notebook in ``src``; runs the missing ones first."""
    import nbformat

    missing = [p.name for p in notebooks() if not (src / p.name).is_file()]
    if missing:
        print(f"no executed copy of {', '.join(missing)} in {src}: running them first", flush=True)
        run_notebooks(preset, out=src, only=missing)
    gone = [p.name for p in notebooks() if not (src / p.name).is_file()]
    if gone:
        raise FileNotFoundError(f"no executed copy of {', '.join(gone)} in {src} after running them")
    pages = []
    for path in notebooks():
        nb = nbformat.read(src / path.name, as_version=4)
        pages.append((f"{path.stem}.html", title_of(nb, path.stem), nb))
    return pages


def write_page(exp, nb, path: Path, title: str, top: str, bottom: str) -> None:
    """Export one notebook to ``path`` with the site's navigation and MathJax."""
    resources = {"metadata": {"name": title, "path": str(path.parent)},
                 "site": {"mathjax": f"mathjax/MathJax.js?config={MATHJAX_CONFIG},Safe", "top": top,
                          "bottom": bottom}}
    body, _ = exp.from_notebook_node(nb, resources=resources)
    path.write_text(body, encoding="utf-8")


def build_site(preset: str = "quick", out=None) -> Path:
    """Write the site (module docstring) to ``out`` (default ``runs/<preset>/site/``); return its index.html."""
    clock = Stopwatch()
    static = mathjax_source()  # before any work: the one clear error without the optional dependency
    src = default_out(preset)
    site = Path(out).expanduser() if out is not None else src / "site"
    pages = executed_notebooks(preset, src)
    results = markdown_notebook(RESULTS_MD.read_text(encoding="utf-8"))
    pages.append(("results.html", title_of(results, "Measured results"), results))
    site.mkdir(parents=True, exist_ok=True)
    copy_mathjax(static, site / "mathjax")
    commit, exp, links = git_commit(), exporter(), [(name, title) for name, title, _ in pages]
    for k, (name, title, nb) in enumerate(pages):
        local_figures(nb, site)
        static_widgets(nb)
        ran = (nb.metadata.get("papermill") or {}).get("end_time")
        write_page(exp, nb, site / name, title, provenance(preset, commit, ran and ran[:10]), neighbours(links, k))
    entries = [(name, title, stopped_at_error(nb)) for name, title, nb in pages]
    write_page(exp, markdown_notebook(index_markdown(preset, entries)), site / "index.html",
               "PaletteNet: the notebooks", provenance(preset, commit, None), "")
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    print(f"wrote {len(pages) + 1} pages to {site} ({size / 1e6:.1f} MB with MathJax) in {clock.s:.1f} s; "
          f"open {site / 'index.html'}")
    return site / "index.html"
