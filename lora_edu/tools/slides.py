"""Lecture slides from the notebooks (``make slides``): offline, readable from the back of a room.

A notebook is written to be read; a slide is looked at from ten metres. :func:`plan` turns the
notebook into slides by one rule, and everything else follows from it:

* **Cut:** the title and every ``##`` section start a slide, ``###`` a sub-slide (also where the
  heading sits in the middle of a markdown cell), the set-up cells are skipped, and content that
  would not fit on one 1280 x 720 screen continues on a sub-slide.
* **Condense code:** test markers (``# NBVAL_*``) and check-only statements (``assert ...``,
  ``np.testing.assert_*``, loops and ``if`` blocks made only of checks, with the comment lines right
  above them) are not shown; a cell left with nothing to show but an output shows its output only.
  Code longer than :data:`CODE_MAX_LINES` shows only its output when it has one ("the output is the
  point"); otherwise it is cut with a line saying how much more is in the notebook. Long text outputs
  are cut the same way, and pictures are sized to the room left on their slide.
* **Speaker notes:** a markdown cell shows as many of its leading blocks (paragraphs, lists,
  formulas, tables, figures) as fit; the rest of it, and any code hidden from the slide, goes to the
  speaker notes (reveal.js: press ``S``).
* **Fit:** the sizes are estimated with the slide's own type sizes (:data:`PROSE_PX`, :data:`CODE_PX`,
  ...). In the browser a slide whose content is still taller or wider than the screen is scaled down
  to fit, but never below :data:`MIN_SCALE`; the browser test (``tests/test_browser.py``) pages
  through every slide of every deck at 1280 x 720 and fails on any slide whose content leaves the
  screen, naming the deck and the slide (:func:`fit_problems`).

The notebook keeps everything: only the slide copy is condensed. :func:`annotate` writes the slide
type of each cell into the notebook's cell metadata (``metadata.slideshow.slide_type``, read by
JupyterLab's slideshow tools such as RISE); ``make execute`` re-applies it.

:func:`build_slides` converts with nbconvert's reveal.js exporter and a template of ours that loads
nothing from the internet: reveal.js 5.2.1 ships inside this package (``assets/vendor/reveal.js``, MIT, see
its ``VENDORED.md``), MathJax comes from the ``jupyter-server-mathjax`` Python package, figures are
embedded, and widget outputs are replaced by their static picture.
"""

from __future__ import annotations

import argparse
import ast
import base64
import copy
import hashlib
import io
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from lora_edu.tools.nbcheck import resolve_carriage_returns
from lora_edu.tools.registry import notebook_paths

TEMPLATE_NAME = "lora-edu-reveal"
# Relative to the working directory (make runs in the repository root), never to this file: after
# a pip install this file lives in site-packages.
DEFAULT_OUT = Path("build") / "slides"

REVEAL_VERSION = "5.2.1"
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# ---------------------------------------------------------------------------------------------
# The slide and its type sizes (CSS px at the slide's own size; reveal.js scales the whole slide
# to the screen, so on a 1920 x 1080 projector everything is 1.5 times larger). The template's
# style sheet uses the same numbers (they are passed to it), so the estimate and the page agree.
# ---------------------------------------------------------------------------------------------

SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720
#: The room for content: the slide less reveal's padding and the cells' own margins.
CONTENT_WIDTH, CONTENT_HEIGHT = 1200, 660
PROSE_PX, PROSE_LINE = 26, 35          # body text: 26 px is 1/28 of the screen's height
CODE_PX, CODE_LINE = 20, 27            # code cells (lines wrap rather than leave the slide)
OUTPUT_PX, OUTPUT_LINE = 18, 23        # printed output (wraps too)
HEADING_PX = {1: 48, 2: 38, 3: 31}
PROSE_CHARS = 88                       # characters of body text per line (Source Sans Pro at 26 px)
CODE_CHARS = 98                        # monospace characters per line at 20 px
OUTPUT_CHARS = 108                     # ... at 18 px
#: A slide may be scaled down this far to fit; one that needs more fails the fit test.
MIN_SCALE = 0.8
CODE_MAX_LINES = 18                    # longer code shows only its output (or is cut)
OUTPUT_MAX_LINES = 16                  # longer text outputs are cut on the slide
FIGURE_MAX_HEIGHT = 480                # a picture is never taller than this on a slide
FIGURE_MIN_HEIGHT = 220                # ... nor squeezed below this to share a slide
CELL_GAP = 14                          # vertical space around a cell


# ---------------------------------------------------------------------------------------------
# Code: what a slide shows of a code cell
# ---------------------------------------------------------------------------------------------

_MARKER = re.compile(r"^\s*#\s*NBVAL_\w+.*$")


def _is_check(node: ast.stmt) -> bool:
    """A statement that only checks: ``assert``, a call to an ``assert*`` function, or a loop /
    ``if`` / ``with`` whose whole body checks."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("assert")
    if isinstance(node, (ast.For, ast.While, ast.If, ast.With)):
        return all(_is_check(n) for n in node.body) and all(_is_check(n) for n in getattr(node, "orelse", []))
    return False


def _docstring_spans(tree: ast.AST) -> list[tuple[int, int]]:
    """0-based inclusive line spans of the docstrings of functions and classes that have more body."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and len(node.body) > 1:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                spans.append((first.lineno - 1, first.end_lineno - 1))
    return spans


def _check_spans(tree: ast.AST) -> list[tuple[int, int]]:
    """0-based inclusive line spans of the check-only statements (outermost first)."""
    spans = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if _is_check(node):
                spans.append((node.lineno - 1, node.end_lineno - 1))
                continue
            for attr in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, attr, None)
                if isinstance(inner, list):
                    visit([n for n in inner if isinstance(n, ast.stmt)] if attr != "handlers"
                          else [s for h in inner for s in h.body])

    visit(tree.body)
    return spans


def condense_code(source: str) -> str:
    """The code a slide shows: ``source`` without test markers, check-only statements and the
    docstrings of functions and classes (the speaker says what a function is for).

    The comment lines directly above a removed check (no blank line between) go with it. Runs of
    blank lines left behind become one. Source that does not parse (an IPython magic the parser
    does not know) loses its marker lines and its single-line ``assert`` statements only.
    """
    lines = source.splitlines()
    drop = {i for i, line in enumerate(lines) if _MARKER.match(line)}
    try:
        tree = ast.parse(source)
        for start, end in _docstring_spans(tree):
            drop.update(range(start, end + 1))
        spans = _check_spans(tree)
    except SyntaxError:
        spans = [(i, i) for i, line in enumerate(lines) if re.match(r"^\s*assert\s", line)
                 and line.count("(") == line.count(")") and line.count("[") == line.count("]")]
    for start, end in spans:
        drop.update(range(start, end + 1))
        k = start - 1
        while k >= 0 and lines[k].strip().startswith("#"):
            drop.add(k)
            k -= 1
    kept, blank = [], False
    for i, line in enumerate(lines):
        if i in drop:
            continue
        if not line.strip():
            if blank or not kept:
                continue
            blank = True
        else:
            blank = False
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _wrapped_lines(text: str, width: int) -> int:
    return sum(max(1, math.ceil(len(line.rstrip()) / width)) for line in text.splitlines()) if text else 0


def cut_lines(text: str, n: int, comment: str) -> str:
    """The first ``n`` lines of ``text`` and a last line saying how many more there are."""
    lines = text.splitlines()
    if len(lines) <= n:
        return text
    return "\n".join(lines[: n - 1] + [f"{comment} ... {len(lines) - n + 1} more lines in the notebook"])


# ---------------------------------------------------------------------------------------------
# Sizes of what goes on a slide
# ---------------------------------------------------------------------------------------------

def _image_size(data: str | list[str], mime: str) -> tuple[int, int]:
    """Pixel width and height of a base64 PNG/JPEG output (0, 0 if unreadable)."""
    from PIL import Image

    raw = base64.b64decode("".join(data) if isinstance(data, list) else data)
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return im.size
    except Exception:  # a broken picture: let the browser decide
        return 0, 0


def _file_image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return 0, 0


def _shown_height(width: int, height: int, max_height: float = FIGURE_MAX_HEIGHT) -> float:
    """The height a ``width`` x ``height`` picture takes on a slide: fitted to the content width and
    to ``max_height`` (both by the style sheet), never enlarged."""
    if not width or not height:
        return max_height
    return min(height, height * CONTENT_WIDTH / width, max_height)


_INLINE_MATH = re.compile(r"\$[^$\n]+\$")
_MD_SYNTAX = re.compile(r"(\*\*|__|`|\[|\]\([^)]*\)|<[^>]+>)")


def _visible_chars(line: str) -> int:
    """About how many characters a line of markdown shows (formulas render shorter than their LaTeX)."""
    line = _INLINE_MATH.sub(lambda m: "x" * max(1, len(m.group()) // 3), line)
    return len(_MD_SYNTAX.sub("", line).strip())


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def markdown_blocks(text: str) -> list[str]:
    """``text`` split into blocks at blank lines, keeping fenced code, ``$$`` formulas and
    ``<details>`` elements whole, and putting every heading in a block of its own."""
    blocks: list[list[str]] = [[]]
    fence = None
    display = False
    details = 0
    for line in text.splitlines():
        stripped = line.strip()
        inside = fence is not None or display or details > 0
        if fence is None and re.match(r"^\s{0,3}(`{3,}|~{3,})", line):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None:
            if line.count("$$") % 2:
                display = not display
            details += len(re.findall(r"<details\b", line)) - len(re.findall(r"</details>", line))
        if not inside and re.match(r"^#{1,6} ", line):
            blocks.append([line])
            blocks.append([])
            continue
        if not stripped and not inside:
            blocks.append([])
            continue
        blocks[-1].append(line)
    return ["\n".join(b) for b in blocks if any(ln.strip() for ln in b)]


def heading_level(block: str) -> int:
    """1-6 for a markdown heading block, 0 otherwise."""
    m = re.match(r"^(#{1,6}) ", block)
    return len(m.group(1)) if m else 0


def block_height(block: str, nb_dir: Path | None = None) -> float:
    """The estimated height in px of one markdown block on a slide."""
    level = heading_level(block)
    if level:
        size = HEADING_PX.get(level, PROSE_PX)
        return size * 1.25 * max(1, math.ceil(_visible_chars(block.lstrip("# ")) * size / PROSE_PX / PROSE_CHARS)) + 16
    stripped = block.strip()
    if stripped.startswith("<details"):
        return PROSE_LINE + 12           # shown closed: its summary line
    if stripped.startswith(("```", "~~~")):
        return _wrapped_lines("\n".join(stripped.splitlines()[1:-1]), CODE_CHARS) * CODE_LINE + 24
    height = 0.0
    images = _MD_IMAGE.findall(block)
    for url in images:
        size = _file_image_size(nb_dir / url) if nb_dir is not None and not re.match(r"^[a-z]+:", url) else (0, 0)
        height += _shown_height(*size) + 10
    text = _MD_IMAGE.sub("", block)
    if "$$" in text:
        for formula in re.findall(r"\$\$(.+?)\$\$", text, flags=re.S):
            rows = formula.count(r"\\") + 1
            tall = 1.6 if re.search(r"\\(frac|sum|max|min|begin|sqrt|underbrace|binom)", formula) else 1.0
            height += rows * PROSE_LINE * tall + 24
        text = re.sub(r"\$\$.+?\$\$", "", text, flags=re.S)
    if text.lstrip().startswith("|"):
        rows = [ln for ln in text.splitlines()
                if ln.strip().startswith("|") and not re.match(r"^\s*\|[-:| ]+\|\s*$", ln)]
        return height + len(rows) * (PROSE_LINE + 6) + 16
    # a paragraph wraps as one; each list item starts a new line
    logical: list[str] = []
    for line in text.splitlines():
        if re.match(r"^\s*([-*+]|\d+[.)])\s", line) or not logical:
            logical.append(line)
        else:
            logical[-1] += " " + line.strip()
    lines = sum(max(1, math.ceil(_visible_chars(s) / PROSE_CHARS)) for s in logical if s.strip())
    return height + lines * PROSE_LINE + (18 if lines else 0)


def _output_text(out) -> str:
    if out.get("output_type") == "stream":
        return "".join(out.get("text", ""))
    return "".join(out.get("data", {}).get("text/plain", ""))


def outputs_height(outputs: list, room: float = CONTENT_HEIGHT) -> float:
    """The estimated height in px of a cell's outputs as a slide shows them (pictures at the height
    their metadata gives, else as :func:`_shown_height` sizes them)."""
    height = 0.0
    for out in outputs:
        data = out.get("data", {})
        mime = next((m for m in ("image/png", "image/jpeg") if m in data), None)
        if mime:
            meta = out.get("metadata", {}).get(mime, {})
            height += meta["height"] if "height" in meta else _shown_height(*_image_size(data[mime], mime))
            height += 8
        elif out.get("output_type") == "stream" or "text/plain" in data:
            height += _wrapped_lines(_output_text(out).rstrip("\n"), OUTPUT_CHARS) * OUTPUT_LINE + 12
    return height


# ---------------------------------------------------------------------------------------------
# The plan: notebook cells -> slide pieces
# ---------------------------------------------------------------------------------------------

@dataclass
class Piece:
    """One cell of the slide copy: all or part of a notebook cell, or a speaker-notes cell.

    Attributes:
        cell: the cell as the slide shows it (a condensed copy; the notebook is never changed), or
            None for a piece that only adds speaker notes (a worked solution).
        index: the notebook cell it comes from.
        height: its estimated height in px on the slide (0 for notes).
        heading: 1-3 when it starts with a heading of that level, else 0.
        slide_type: set by :func:`plan`.
    """

    cell: nbformat.NotebookNode | None
    index: int
    height: float
    heading: int = 0
    slide_type: str = "-"
    notes: list[str] = field(default_factory=list)


def is_setup_cell(cell, index: int) -> bool:
    """The install cell and the imports cell at the top: needed to run, not to lecture."""
    if cell.cell_type != "code" or index > 3:
        return False
    code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
    return bool(code) and code[0].startswith(("import ", "from "))


_LIST_ITEM = re.compile(r"^\s{0,3}([-*+]|\d+[.)])\s")


def list_items(block: str) -> list[str]:
    """The items of a markdown list block (one string each, continuation lines included); a block
    that is not a list is one item."""
    items: list[list[str]] = []
    for line in block.splitlines():
        if _LIST_ITEM.match(line) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    return ["\n".join(item) for item in items]


def is_slide_material(block: str) -> bool:
    """Blocks a slide shows rather than the speaker says: lists, formulas, tables, figures, code."""
    b = block.lstrip()
    return bool(_LIST_ITEM.match(block) or b.startswith(("$$", "|", "```", "~~~", "![", "\\begin")) or "$$" in b)


def _markdown_pieces(cell, index: int, nb_dir: Path | None) -> list[Piece]:
    """A markdown cell as slide pieces (the module docstring's rule for markdown).

    The cell is split at its ``#``-``###`` headings. Each part shows its heading and first block,
    then the blocks that fit. When one does not: a prose paragraph goes to the speaker notes (and
    so does every later paragraph, to keep the reading order); a list, formula, table or figure
    continues on a new piece (a list is split between items), so what a lecture projects stays on
    screen. A worked solution (``<details>``) always goes to the notes.
    """
    parts: list[list[str]] = [[]]
    for block in markdown_blocks(cell.source):
        if heading_level(block) in (1, 2, 3) and parts[-1]:
            parts.append([])
        parts[-1].append(block)
    pieces: list[Piece] = []
    room = CONTENT_HEIGHT - 40

    def new_piece(heading: int = 0) -> dict:
        return {"shown": [], "notes": [], "height": 0.0, "heading": heading}

    def close(p: dict) -> None:
        cell_ = nbformat.v4.new_markdown_cell("\n\n".join(p["shown"])) if p["shown"] else None
        height = p["height"] + CELL_GAP if p["shown"] else 0.0
        pieces.append(Piece(cell_, index, height, p["heading"], notes=p["notes"]))

    for blocks in parts:
        heading = heading_level(blocks[0]) if heading_level(blocks[0]) in (1, 2, 3) else 0
        current, prose_to_notes = new_piece(heading), False
        queue = list(blocks)
        while queue:
            block = queue.pop(0)
            if block.lstrip().startswith("<details"):
                current["notes"].append(block)       # a worked solution is for the speaker, not the room
                continue
            h = block_height(block, nb_dir)
            minimum = 2 if current["heading"] else 1    # a heading and the block after it, or one block
            fits = current["height"] + h <= room
            if not is_slide_material(block) and prose_to_notes:
                current["notes"].append(block)
            elif fits or len(current["shown"]) < minimum and not (current["shown"] and is_slide_material(block)
                                                                  and len(list_items(block)) > 1):
                current["shown"].append(block)
                current["height"] += h
            elif not is_slide_material(block):
                current["notes"].append(block)
                prose_to_notes = True
            else:
                items = list_items(block)
                taken = []
                while len(items) > 1 and current["height"] + block_height("\n".join(taken + items[:1]), nb_dir) <= room:
                    taken.append(items.pop(0))
                if taken:
                    current["shown"].append("\n".join(taken))
                    current["height"] += block_height("\n".join(taken), nb_dir)
                    queue.insert(0, "\n".join(items))
                else:
                    queue.insert(0, block)
                close(current)
                current = new_piece()
        close(current)
    return pieces


def _code_piece(cell, index: int) -> Piece | None:
    """The slide version of a code cell, or None when it shows nothing."""
    code = condense_code(cell.source)
    outputs = [copy.deepcopy(o) for o in cell.get("outputs", [])]
    for out in outputs:
        text = _output_text(out)
        if len(text.rstrip("\n").splitlines()) > OUTPUT_MAX_LINES:
            cut = cut_lines(text.rstrip("\n"), OUTPUT_MAX_LINES, "") + "\n"
            if out.get("output_type") == "stream":
                out["text"] = cut
            else:
                out["data"]["text/plain"] = cut
    pictures = [o for o in outputs if any(m in o.get("data", {}) for m in ("image/png", "image/jpeg"))]
    notes = []
    code_lines = _wrapped_lines(code, CODE_CHARS)
    if outputs and (code_lines > CODE_MAX_LINES or not code):
        if code:
            notes.append("Code of this slide (hidden; it is in the notebook):\n\n```python\n" + code + "\n```")
        code = ""
    elif code_lines > CODE_MAX_LINES:
        code = cut_lines(code, CODE_MAX_LINES, "#")
    if not code and not outputs:
        return None
    code_height = (_wrapped_lines(code, CODE_CHARS) * CODE_LINE + 24) if code else 0
    text_height = outputs_height([o for o in outputs if o not in pictures])
    if pictures:
        # pictures share what is left of a slide (less room for a heading above them)
        room = (CONTENT_HEIGHT - 60 - code_height - text_height) / len(pictures)
        for out in pictures:
            mime = next(m for m in ("image/png", "image/jpeg") if m in out["data"])
            w, h = _image_size(out["data"][mime], mime)
            shown = _shown_height(w, h, max(FIGURE_MIN_HEIGHT, min(FIGURE_MAX_HEIGHT, room)))
            if w and h:
                out.setdefault("metadata", {})[mime] = {"height": round(shown), "width": round(w * shown / h)}
    piece_cell = nbformat.v4.new_code_cell(code)
    piece_cell.outputs = outputs
    piece_cell.execution_count = cell.get("execution_count")
    height = code_height + outputs_height(outputs) + CELL_GAP
    return Piece(piece_cell, index, height, notes=notes)


def plan(nb, nb_dir: str | Path | None = None) -> list[Piece]:
    """The slide copy of ``nb`` as a list of pieces with their slide types (see the module docstring).

    ``nb_dir`` is the notebook's folder, for the sizes of the figures its markdown links to.
    """
    nb_dir = Path(nb_dir) if nb_dir is not None else None
    pieces: list[Piece] = []
    for i, cell in enumerate(nb.cells):
        if i > 0 and is_setup_cell(cell, i):
            continue
        if cell.cell_type == "markdown":
            pieces.extend(_markdown_pieces(cell, i, nb_dir))
        elif cell.cell_type == "code":
            piece = _code_piece(cell, i)
            if piece is not None:
                pieces.append(piece)
    used = 0.0
    for k, piece in enumerate(pieces):
        if piece.cell is None:
            piece.slide_type = "notes"
        elif k == 0 or piece.heading in (1, 2):
            piece.slide_type = "slide"
        elif piece.heading == 3 or used + piece.height > CONTENT_HEIGHT:
            piece.slide_type = "subslide"
        else:
            piece.slide_type = "-"
        used = piece.height if piece.slide_type in ("slide", "subslide") else used + piece.height
    return pieces


def slide_types(nb, nb_dir: str | Path | None = None) -> list[str]:
    """The slide type of every cell of ``nb`` by :func:`plan`: that of the cell's first piece, and
    ``skip`` for a cell the slides do not show (set-up cells, checks with no output)."""
    first: dict[int, str] = {}
    for piece in plan(nb, nb_dir):
        first.setdefault(piece.index, piece.slide_type)
    return [first.get(i, "skip") for i in range(len(nb.cells))]


def annotate(path: str | Path) -> bool:
    """Write :func:`slide_types` into the notebook at ``path``; returns whether anything changed.

    Only ``metadata.slideshow`` is touched: sources, outputs and execution counts stay as they are.
    """
    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell, kind in zip(nb.cells, slide_types(nb, path.parent), strict=True):
        if cell.metadata.get("slideshow", {}).get("slide_type") != kind:
            cell.metadata["slideshow"] = {"slide_type": kind}
            changed = True
    if changed:
        nbformat.write(nb, str(path))
    return changed


# ---------------------------------------------------------------------------------------------
# The slide copy
# ---------------------------------------------------------------------------------------------

def static_copy(nb, nb_dir: Path | None = None, base: Path | None = None):
    """A copy of ``nb`` with widget views dropped, and markdown image paths rewritten from
    ``nb_dir`` to ``base`` when both are given.

    An explorer's live widget is its own output, followed by an output with its static PNG: the
    widget output goes, the PNG stays. (A widget view bundled with a PNG keeps only the PNG.)
    Consecutive stream outputs become one, showing what a terminal would (the last frame of a
    progress bar).
    """
    nb = copy.deepcopy(nb)
    if nb_dir is not None and base is not None:
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _rebase_images(cell.source, Path(nb_dir).resolve(), Path(base).resolve())
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if "outputs" not in cell:
            continue
        kept = []
        for out in cell.outputs:
            if out.get("output_type") == "stream" and kept and kept[-1].get("output_type") == "stream" \
                    and kept[-1].get("name") == out.get("name"):
                kept[-1]["text"] = "".join(kept[-1]["text"]) + "".join(out["text"])   # one stream, as Lab shows it
                continue
            data = out.get("data", {})
            if WIDGET_MIME in data:
                if "image/png" not in data:
                    continue  # the note "the widget did not render" is for readers, not an audience
                del data[WIDGET_MIME]
                data.pop("text/plain", None)
            kept.append(out)
        for out in kept:
            if out.get("output_type") == "stream":
                out["text"] = resolve_carriage_returns("".join(out["text"]))   # progress bars: the last frame
        cell.outputs = kept
    return nb


def slide_notebook(nb, nb_dir: str | Path | None = None):
    """The notebook nbconvert turns into the deck: :func:`plan`'s pieces as cells with their slide
    types, each followed by a speaker-notes cell with what did not fit. ``nb`` should be a
    :func:`static_copy`."""
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    pieces = plan(nb, nb_dir)
    starts = [k for k, p in enumerate(pieces) if p.slide_type in ("slide", "subslide")] + [len(pieces)]
    for a, b in zip(starts, starts[1:], strict=False):  # the slide's estimated height, for calibrating the estimate
        pieces[a].cell.metadata["slideshow"] = {"data": {
            "lora_cell": str(pieces[a].index), "lora_estimate": str(round(sum(p.height for p in pieces[a:b])))}}
    for piece in pieces:
        if piece.cell is not None:
            piece.cell.metadata.setdefault("slideshow", {})["slide_type"] = piece.slide_type
            if piece.cell.cell_type == "code" and not piece.cell.source:
                piece.cell.metadata["transient"] = {"remove_source": True}   # its output is the point
            out.cells.append(piece.cell)
        if piece.notes:
            notes = nbformat.v4.new_markdown_cell("\n\n".join(piece.notes))
            notes.metadata["slideshow"] = {"slide_type": "notes"}
            out.cells.append(notes)
    return out


# ---------------------------------------------------------------------------------------------
# Offline assets
# ---------------------------------------------------------------------------------------------

def _assets() -> Path:
    from importlib.resources import files

    return Path(str(files("lora_edu") / "assets"))


def reveal_dir() -> Path:
    """The vendored reveal.js (package data): the files the slides load, with their licences."""
    return _assets() / "vendor" / "reveal.js"


def template_dir() -> Path:
    """The folder of the offline slide template, shipped inside the package (package data)."""
    return _assets() / "slides_templates"


def verify_reveal(folder: Path | None = None) -> list[str]:
    """The files of the vendored reveal.js that are missing or differ from its ``SHA256SUMS``."""
    folder = Path(folder) if folder is not None else reveal_dir()
    bad = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = folder / name
        if not path.is_file():
            bad.append(f"{name}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(f"{name}: sha256 differs from SHA256SUMS")
    return bad


def install_assets(out: Path) -> dict[str, str]:
    """Put reveal.js and MathJax next to the slides; returns their URLs relative to ``out``."""
    import jupyter_server_mathjax

    bad = verify_reveal()
    if bad:
        raise RuntimeError(f"the vendored reveal.js in {reveal_dir()} is damaged: {'; '.join(bad)} "
                           "(reinstall lora_edu)")
    reveal = out / "reveal.js"
    if not (reveal / "SHA256SUMS").is_file() or (reveal / "SHA256SUMS").read_bytes() != \
            (reveal_dir() / "SHA256SUMS").read_bytes() or verify_reveal(reveal):
        shutil.rmtree(reveal, ignore_errors=True)
        shutil.copytree(reveal_dir(), reveal)
    mathjax = out / "mathjax"
    if not (mathjax / "MathJax.js").exists():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", mathjax)
    return {"reveal": "reveal.js", "mathjax": "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"}


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------

_MD_LINK = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)(\))")


def _rebase_images(source: str, nb_dir: Path, base: Path) -> str:
    """Rewrite relative markdown image paths from ``nb_dir`` to ``base``. nbconvert embeds only
    files *under* the folder it is given, and the notebooks link ``../figures/``."""
    def fix(m: re.Match) -> str:
        url = m.group(2)
        if re.match(r"^[a-z]+:", url) or url.startswith("/"):
            return m.group(0)
        target = (nb_dir / url).resolve()
        return m.group(1) + (target.relative_to(base).as_posix() if target.is_relative_to(base) else url) + m.group(3)
    return _MD_LINK.sub(fix, source)


def style() -> dict[str, object]:
    """The numbers the template's style sheet and fit script use (the same as the estimate's)."""
    return {"width": SLIDE_WIDTH, "height": SLIDE_HEIGHT, "prose_px": PROSE_PX, "prose_line": PROSE_LINE,
            "code_px": CODE_PX, "code_line": CODE_LINE, "output_px": OUTPUT_PX, "output_line": OUTPUT_LINE,
            "h1": HEADING_PX[1], "h2": HEADING_PX[2], "h3": HEADING_PX[3], "figure_max": FIGURE_MAX_HEIGHT,
            "min_scale": MIN_SCALE}


def build_slides(notebooks: list[Path], out: str | Path = DEFAULT_OUT) -> list[Path]:
    """Convert each notebook to ``out``/<name>.slides.html, with the offline assets beside them."""
    from nbconvert import SlidesExporter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    urls = install_assets(out)
    exporter = SlidesExporter(
        extra_template_basedirs=[str(template_dir())], template_name=TEMPLATE_NAME,
        reveal_url_prefix=urls["reveal"], mathjax_url=urls["mathjax"],
        embed_images=True,       # markdown figures (../figures/*.png) go inside the file
        reveal_theme="white",    # "simple" imports Google Fonts; "white" has its fonts beside it
        reveal_number="c/t", reveal_width=str(SLIDE_WIDTH), reveal_height=str(SLIDE_HEIGHT),
    )
    written = []
    for path in notebooks:
        path = Path(path)
        nb = nbformat.read(str(path), as_version=4)
        base = path.parent.resolve().parent     # the repository root: notebooks/ and figures/ are under it
        deck = slide_notebook(static_copy(nb, path.parent, base), base)
        body, _ = exporter.from_notebook_node(
            deck, resources={"metadata": {"path": str(base), "name": path.stem}, "lora_edu": style()})
        target = out / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
    return written


# ---------------------------------------------------------------------------------------------
# The fit check (run in Chromium by tests/test_browser.py, or by --check-fit)
# ---------------------------------------------------------------------------------------------

#: Pages through every slide and sub-slide; for each, the box around what is visible on it, in
#: screen px, and the scale the fit script chose (``data-lora-needed``: what full fit would need).
FIT_REPORT_JS = """async () => {
  Reveal.configure({transition: 'none', backgroundTransition: 'none'});
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const report = [];
  for (const slide of Reveal.getSlides()) {
    const idx = Reveal.getIndices(slide);
    Reveal.slide(idx.h, idx.v);
    await frame();
    if (window.MathJax && MathJax.Hub) { await new Promise(r => MathJax.Hub.Queue(r)); }
    if (window.loraEduFit) { window.loraEduFit(slide); }
    await frame();
    let left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity;
    const clipped = [];
    for (const el of [slide, ...slide.querySelectorAll('*')]) {
      const hidden = 'aside.notes, .MJX_Assistive_MathML, .MathJax_Preview, details:not([open]) > :not(summary)';
      if (el.closest(hidden)) continue;
      // a formula counts as its box (MathJax positions its inner parts absolutely, clipped)
      if (el.parentElement && el.parentElement.closest('.MathJax, .MathJax_Display')) continue;
      const cs = getComputedStyle(el);
      if (cs.display === 'none' || cs.visibility === 'hidden') continue;
      const rect = el.getBoundingClientRect();
      if (rect.width === 0 || rect.height === 0) continue;
      left = Math.min(left, rect.left); top = Math.min(top, rect.top);
      right = Math.max(right, rect.right); bottom = Math.max(bottom, rect.bottom);
      const cutX = cs.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 2;
      const cutY = cs.overflowY !== 'visible' && el.scrollHeight > el.clientHeight + 2;
      if ((cutX || cutY) && clipped.length < 3) {
        clipped.push(el.tagName.toLowerCase() + [...el.classList].slice(0, 2).map(c => '.' + c).join(''));
      }
    }
    // the slide's heading, else its section's (the heading of slide h.0), with formulas as TeX
    const text = el => {
      const c = el.cloneNode(true);
      c.querySelectorAll('.MathJax, .MathJax_Preview, .MathJax_Display, .MJX_Assistive_MathML, .anchor-link')
        .forEach(e => e.remove());
      return Array.from(c.textContent.replace(/\\s+/g, ' ').trim()).slice(0, 70).join('');
    };
    const own = slide.querySelector('h1, h2, h3');
    const stack = slide.parentElement.tagName === 'SECTION' ? slide.parentElement.querySelector('h1, h2, h3') : null;
    const title = own ? text(own) : stack ? text(stack) + ' (continued)' : '';
    report.push({h: idx.h, v: idx.v, title, left, top, right, bottom, clipped,
                 cell: slide.dataset.loraCell || null,
                 estimate: parseFloat(slide.dataset.loraEstimate || 'NaN'),
                 natural: parseFloat(slide.dataset.loraNatural || 'NaN'),
                 scale: parseFloat(slide.dataset.loraScale || '1'),
                 needed: parseFloat(slide.dataset.loraNeeded || '1'),
                 width: window.innerWidth, height: window.innerHeight});
  }
  Reveal.slide(0, 0);
  return report;
}"""


def fit_problems(deck: str, report: list[dict], tolerance: float = 1.0) -> list[str]:
    """One line per slide of ``report`` (from :data:`FIT_REPORT_JS`) whose content leaves the screen
    or is cut off inside a scrolling box, naming the deck, the slide (``h.v`` as in the deck's
    ``#/h/v`` address, and its heading) and by how much."""
    problems = []
    for s in report:
        cell = f", notebook cell {s['cell']}" if s.get("cell") is not None else ""
        where = f"{deck} slide {s['h']}.{s['v']} (#/{s['h']}/{s['v']}, '{s['title']}'{cell})"
        out = []
        if s["bottom"] > s["height"] + tolerance:
            out.append(f"{s['bottom'] - s['height']:.0f} px below the {s['height']} px screen")
        if s["top"] < -tolerance:
            out.append(f"{-s['top']:.0f} px above the screen")
        if s["right"] > s["width"] + tolerance:
            out.append(f"{s['right'] - s['width']:.0f} px right of the {s['width']} px screen")
        if s["left"] < -tolerance:
            out.append(f"{-s['left']:.0f} px left of the screen")
        if s["clipped"]:
            out.append(f"content cut off inside {', '.join(s['clipped'])}")
        if out:
            need = f"; it would need scale {s['needed']:.2f} (< {MIN_SCALE})" if s["needed"] < MIN_SCALE else ""
            problems.append(f"{where}: {'; '.join(out)}{need}")
    return problems


def check_fit(files: list[Path], width: int = SLIDE_WIDTH, height: int = SLIDE_HEIGHT) -> dict[str, list[dict]]:
    """Open each deck in headless Chromium at ``width`` x ``height`` and return its fit report."""
    from playwright.sync_api import sync_playwright

    from lora_edu.tools.browser import CHROMIUM, CHROMIUM_ARGS

    reports = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for f in files:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(Path(f).resolve().as_uri(), wait_until="load")
                page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=60_000)
                reports[Path(f).name.removesuffix(".slides.html")] = page.evaluate(FIT_REPORT_JS)
                page.close()
        finally:
            browser.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lecture slides from the course notebooks (offline reveal.js).")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebook of lora_edu.tools.registry, in notebooks/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--annotate", action="store_true",
                        help="(authors) write the slide types into the notebooks' cell metadata and exit")
    parser.add_argument("--check-fit", action="store_true",
                        help="(authors) after building, page through every slide in headless Chromium at "
                             f"{SLIDE_WIDTH} x {SLIDE_HEIGHT} and list the slides whose content leaves the screen")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or notebook_paths()
    missing = [str(p) for p in notebooks if not Path(p).is_file()]
    if missing:
        parser.error(f"no such notebook(s): {', '.join(missing)} (run from the repository root, or name them)")
    if args.annotate:
        for nb in notebooks:
            print(f"{nb.name}: {'updated' if annotate(nb) else 'unchanged'}")
        return 0
    files = build_slides(notebooks, args.out)
    for path in files:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"open {args.out / notebooks[0].stem}.slides.html in a browser; arrows move, S opens the speaker view")
    if args.check_fit:
        failed = 0
        for deck, report in check_fit(files).items():
            problems = fit_problems(deck, report)
            failed += len(problems)
            print(f"{deck}: {len(report) - len(problems)} of {len(report)} slides fit")
            for line in problems:
                print(f"  {line}")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
