"""make slides: cell metadata by one rule, offline reveal.js files, and one opened in Chromium."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from lora_edu.tools import slides as SL
from lora_edu.tools.registry import notebook_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT / "notebooks")


def md(text):
    return nbformat.v4.new_markdown_cell(text)


def code(text, outputs=()):
    cell = nbformat.v4.new_code_cell(text)
    cell.outputs = list(outputs)
    return cell


def test_slide_rule_on_a_small_notebook():
    nb = nbformat.v4.new_notebook()
    long_output = nbformat.v4.new_output("stream", name="stdout", text="x\n" * 30)
    nb.cells = [md("# Title\n\ntext"), code("import numpy as np\n\nnp.zeros(2)"), md("## 1. First"),
                code("print(1)"), md("### a detail"), code("print(2)", [long_output]), code("print(3)"),
                md("## Summary")]
    assert SL.slide_types(nb) == ["slide", "skip", "slide", "-", "subslide", "subslide", "subslide", "slide"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_metadata_follows_the_rule(path):
    nb = nbformat.read(str(path), as_version=4)
    stored = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert stored == SL.slide_types(nb), f"run python -m lora_edu.tools.slides --annotate {path.name}"
    assert stored[0] == "slide" and stored[1] == "skip"          # title; the install cell is not lectured
    assert set(stored) <= set(SL.SLIDE_TYPES)
    assert stored.count("slide") >= 5


def test_static_copy_shows_the_png_fallback_instead_of_the_widget():
    nb = nbformat.v4.new_notebook()
    live = nbformat.v4.new_output("display_data", data={SL.WIDGET_MIME: {"model_id": "x"}, "text/plain": "note"})
    static = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "static picture"})
    bundled = nbformat.v4.new_output("display_data", data={SL.WIDGET_MIME: {"model_id": "y"}, "image/png": "iVBOX",
                                                           "text/plain": "note"})
    nb.cells = [code("explorer", [live, static]), code("old_style_explorer", [bundled])]
    nb.metadata["widgets"] = {"state": {}}
    copy = SL.static_copy(nb)
    assert [o["data"] for o in copy.cells[0].outputs] == [static["data"]]  # the live widget's output is gone
    assert copy.cells[1].outputs[0]["data"] == {"image/png": "iVBOX"}
    assert "widgets" not in copy.metadata
    assert SL.WIDGET_MIME in nb.cells[0].outputs[0]["data"], "the original must be left alone"
    # the slide rule counts the static picture once, whichever way it is stored
    assert SL._cell_lines(nb.cells[0]) == SL._cell_lines(nb.cells[1])


def test_a_tampered_reveal_download_is_refused(tmp_path):
    (tmp_path / f"reveal.js-{SL.REVEAL_VERSION}.tgz").write_bytes(b"not the real tarball")
    with pytest.raises(RuntimeError, match="sha256"):
        SL.reveal_tarball(tmp_path)


def test_unannotated_notebook_is_an_error(tmp_path):
    path = tmp_path / "plain.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Title")]
    nbformat.write(nb, str(path))
    with pytest.raises(ValueError, match="--annotate"):
        SL.build_slides([path], tmp_path / "out", vendor=tmp_path / "vendor-unused")


class _Assets(HTMLParser):
    """Collects the files a page loads: script src, link href, img src, source/iframe src."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.sections = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections += 1
        if tag in ("script", "img", "source", "iframe", "video", "audio") and a.get("src"):
            self.refs.append(a["src"])
        if tag == "link" and a.get("href"):
            self.refs.append(a["href"])


@pytest.fixture(scope="module")
def built_slides(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    try:
        SL.reveal_tarball()
    except RuntimeError as exc:
        if os.environ.get("LORA_EDU_REQUIRE_BROWSER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return out, SL.build_slides(NOTEBOOKS, out)


@pytest.mark.slow
def test_every_notebook_becomes_offline_slides(built_slides):
    out, files = built_slides
    assert [f.name for f in files] == [f"{p.stem}.slides.html" for p in NOTEBOOKS]
    for f, nb_path in zip(files, NOTEBOOKS, strict=True):
        html = f.read_text(encoding="utf-8")
        nb = nbformat.read(str(nb_path), as_version=4)
        parser = _Assets()
        parser.feed(html)
        assert f.stat().st_size > 100_000, f"{f.name} is suspiciously small"
        assert parser.sections >= sum(c.metadata["slideshow"]["slide_type"] in ("slide", "subslide") for c in nb.cells)
        assert nb.cells[0].source.splitlines()[0].lstrip("# ").split(" ")[0] in html   # the title
        for ref in parser.refs:
            assert not re.match(r"^(https?:)?//", ref), f"{f.name} loads {ref} from the network"
            if not ref.startswith("data:"):
                assert (out / ref.split("?")[0]).is_file(), f"{f.name} references missing {ref}"
        assert SL.WIDGET_MIME not in html
        n_figures = sum("](../figures/" in c.source for c in nb.cells if c.cell_type == "markdown")
        assert html.count('src="data:image/png') >= n_figures   # figures embedded, not linked
    assert (out / "reveal.js" / "dist" / "reveal.js").is_file() and (out / "mathjax" / "MathJax.js").is_file()


@pytest.mark.slow
@pytest.mark.browser
def test_slides_open_offline_in_chromium(page, built_slides):
    out, files = built_slides
    slides = next(f for f in files if f.name.startswith("04_"))   # its title slide has display math
    page.goto(slides.as_uri(), wait_until="load")
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.reveal .MathJax, .reveal .MathJax_Display').length > 0",
                           timeout=30_000)
    assert "Math Processing Error" not in page.locator(".reveal").inner_text()
    assert page.evaluate("Reveal.getTotalSlides()") >= 10
    page.keyboard.press("ArrowRight")
    page.wait_for_function("Reveal.getIndices().h === 1", timeout=10_000)
    assert page.external_requests == [], "slides must not reach the network"
