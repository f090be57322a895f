"""make slides: cell metadata by one rule, offline reveal.js files, and one opened in Chromium."""

from __future__ import annotations

import re
import shutil
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
                code("# NBVAL_CHECK_OUTPUT\nassert 1 == 1"), md("## Summary")]
    # the set-up cell and a cell that only checks (no output) are not lectured
    assert SL.slide_types(nb) == ["slide", "skip", "slide", "-", "subslide", "-", "-", "skip", "slide"]
    (long_piece,) = [p for p in SL.plan(nb) if p.index == 5]
    shown = long_piece.cell.outputs[0]["text"]
    assert len(shown.splitlines()) == SL.OUTPUT_MAX_LINES and "more lines in the notebook" in shown
    assert "x\n" * 30 == nb.cells[5].outputs[0]["text"], "the notebook keeps everything"


def test_a_section_that_does_not_fit_continues_on_a_subslide():
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Title"), md("## A section")] + [code(f"print({k})", [nbformat.v4.new_output(
        "stream", name="stdout", text="line\n" * 12)]) for k in range(4)]
    types = SL.slide_types(nb)
    assert types[:2] == ["slide", "slide"] and "subslide" in types[2:]
    for piece in SL.plan(nb):
        assert piece.height <= SL.CONTENT_HEIGHT


def test_condense_code_hides_markers_and_checks_but_keeps_the_lesson():
    source = """# NBVAL_CHECK_OUTPUT
def f(x):
    \"\"\"A docstring the speaker says.\"\"\"
    return 2 * x

y = f(3)
# the check below is for the tests
assert y == 6, y
np.testing.assert_allclose(y, 6)
for k in range(3):
    assert f(k) == 2 * k
if y:
    assert y > 0
print(y)"""
    assert SL.condense_code(source) == "def f(x):\n    return 2 * x\n\ny = f(3)\nprint(y)"
    # a cell that does not parse (IPython magic) still loses its markers and one-line asserts
    assert SL.condense_code("# NBVAL_SKIP\n%time x = 1\nassert x == 1\nprint(x)") == "%time x = 1\nprint(x)"


def test_a_long_markdown_cell_shows_what_fits_and_the_rest_goes_to_the_speaker_notes():
    para = "A sentence that explains a point in some detail, as a notebook does for a reader. " * 6
    cell = md("## Why low rank\n\n" + "\n\n".join([para] * 8) + "\n\n<details><summary>Solution</summary>\n\n"
              "the answer\n\n</details>")
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# T"), cell]
    pieces = [p for p in SL.plan(nb) if p.index == 1]
    shown = "\n\n".join(p.cell.source for p in pieces if p.cell is not None)
    notes = "\n\n".join(n for p in pieces for n in p.notes)
    assert shown.startswith("## Why low rank") and para.strip() in shown
    assert shown.count(para.strip()) < 8 and notes.count(para.strip()) == 8 - shown.count(para.strip())
    assert "<details>" in notes and "<details>" not in shown    # a worked solution is for the speaker
    deck = SL.slide_notebook(SL.static_copy(nb))
    assert [c.metadata["slideshow"]["slide_type"] for c in deck.cells].count("notes") >= 1


def test_a_long_list_is_split_between_items_across_subslides():
    items = "\n".join(f"- item {k}: " + "words " * 30 for k in range(20))
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# T"), md("## A list\n\n" + items)]
    pieces = [p for p in SL.plan(nb) if p.index == 1 and p.cell is not None]
    assert len(pieces) >= 2 and [p.slide_type for p in pieces][1:] == ["subslide"] * (len(pieces) - 1)
    shown = "\n".join(p.cell.source for p in pieces)
    assert all(f"- item {k}:" in shown for k in range(20))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_metadata_follows_the_rule(path):
    nb = nbformat.read(str(path), as_version=4)
    stored = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert stored == SL.slide_types(nb, path.parent), f"run python -m lora_edu.tools.slides --annotate {path.name}"
    assert stored[0] == "slide" and stored[1] == "skip"          # title; the install cell is not lectured
    assert set(stored) <= set(SL.SLIDE_TYPES)
    assert stored.count("slide") >= 5


def test_static_copy_shows_the_png_fallback_instead_of_the_widget():
    nb = nbformat.v4.new_notebook()
    live = nbformat.v4.new_output("display_data", data={SL.WIDGET_MIME: {"model_id": "x"}, "text/plain": "note"})
    static = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "static picture"})
    bundled = nbformat.v4.new_output("display_data", data={SL.WIDGET_MIME: {"model_id": "y"}, "image/png": "iVBOX",
                                                           "text/plain": "note"})
    frames = [nbformat.v4.new_output("stream", name="stdout", text="\rstep 1"),
              nbformat.v4.new_output("stream", name="stdout", text="\rstep 2\ndone\n")]
    nb.cells = [code("explorer", [live, static]), code("old_style_explorer", [bundled]), code("loop", frames)]
    nb.metadata["widgets"] = {"state": {}}
    copy = SL.static_copy(nb)
    assert [o["data"] for o in copy.cells[0].outputs] == [static["data"]]  # the live widget's output is gone
    assert copy.cells[1].outputs[0]["data"] == {"image/png": "iVBOX"}
    assert [o["text"] for o in copy.cells[2].outputs] == ["step 2\ndone\n"]   # one stream, the last frame
    assert "widgets" not in copy.metadata
    assert SL.WIDGET_MIME in nb.cells[0].outputs[0]["data"], "the original must be left alone"


def test_the_vendored_reveal_js_is_complete_and_licensed(tmp_path):
    folder = SL.reveal_dir()
    assert SL.verify_reveal() == []
    names = {line.split(maxsplit=1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()}
    assert {"LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/theme/white.css", "plugin/notes/notes.js",
            "dist/theme/fonts/source-sans-pro/LICENSE"} <= names
    assert "Permission is hereby granted, free of charge" in (folder / "LICENSE").read_text()   # MIT
    assert SL.REVEAL_VERSION in (folder / "VENDORED.md").read_text()
    # the theme loads only files that ship (its fonts), nothing from the network
    theme = (folder / "dist" / "theme" / "white.css").read_text() + \
        (folder / "dist/theme/fonts/source-sans-pro/source-sans-pro.css").read_text()
    assert not re.search(r"url\((['\"]?)(https?:)?//", theme) and "@import url(http" not in theme


def test_a_damaged_reveal_js_is_refused(tmp_path):
    copy = tmp_path / "reveal.js"
    shutil.copytree(SL.reveal_dir(), copy)
    (copy / "dist" / "reveal.js").write_text("tampered")
    (copy / "plugin" / "notes" / "notes.js").unlink()
    bad = SL.verify_reveal(copy)
    assert bad == ["dist/reveal.js: sha256 differs from SHA256SUMS", "plugin/notes/notes.js: missing"]


def test_annotate_writes_only_the_slide_metadata(tmp_path):
    path = tmp_path / "plain.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [md("# Title\n\nintro"), code("import numpy as np"), md("## One"), code("print(1)")]
    nbformat.write(nb, str(path))
    assert SL.annotate(path) is True
    again = nbformat.read(str(path), as_version=4)
    assert [c.metadata["slideshow"]["slide_type"] for c in again.cells] == ["slide", "skip", "slide", "-"]
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]
    assert SL.annotate(path) is False


def test_fit_problems_name_the_deck_the_slide_and_by_how_much():
    ok = {"h": 0, "v": 0, "title": "Title", "left": 0, "top": 0, "right": 1200, "bottom": 700, "clipped": [],
          "cell": "0", "needed": 1.0, "width": 1280, "height": 720}
    tall = dict(ok, h=3, v=1, title="Truncated SVD (continued)", bottom=900, cell="17", needed=0.7)
    wide = dict(ok, h=4, right=1400, clipped=["pre"])
    problems = SL.fit_problems("02_svd", [ok, tall, wide])
    assert len(problems) == 2
    assert problems[0].startswith("02_svd slide 3.1 (#/3/1, 'Truncated SVD (continued)', notebook cell 17): "
                                  "180 px below the 720 px screen")
    assert "scale 0.70" in problems[0]
    assert "120 px right" in problems[1] and "cut off inside pre" in problems[1]


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


@pytest.mark.slow
@pytest.mark.browser
def test_every_slide_fits_a_1280x720_screen(page, built_slides):
    """Pages through every slide and sub-slide of every deck at 1280 x 720; a slide whose content
    leaves the screen (after the template scaled it, never below MIN_SCALE) fails with its deck,
    slide address, heading and notebook cell."""
    _, files = built_slides
    page.set_viewport_size({"width": SL.SLIDE_WIDTH, "height": SL.SLIDE_HEIGHT})
    problems, counted = [], {}
    for f in files:
        page.goto(f.as_uri(), wait_until="load")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=60_000)
        report = page.evaluate(SL.FIT_REPORT_JS)
        deck = f.name.removesuffix(".slides.html")
        counted[deck] = len(report)
        assert len(report) == page.evaluate("Reveal.getTotalSlides()")
        problems += SL.fit_problems(deck, report)
    assert not problems, f"{len(problems)} slide(s) do not fit 1280 x 720 ({counted}):\n" + "\n".join(problems)
    assert page.external_requests == [], "slides must not reach the network"
