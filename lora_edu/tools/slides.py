"""Lecture slides from the notebooks (``make slides``), which open offline from the file system.

Each notebook cell carries ``metadata.slideshow.slide_type`` (``slide``, ``subslide``, ``-`` for
"continue this slide", ``skip``). :func:`annotate` sets it by one rule, so all six notebooks cut
the same way: the title and every ``##`` section start a slide, ``###`` a sub-slide, the set-up
cells are skipped, and a slide that grows past a screenful continues on a sub-slide.

:func:`build_slides` converts with nbconvert's reveal.js exporter and a small template of ours
that loads nothing from the internet: reveal.js comes from its npm package (fetched once, then
cached in ``build/vendor``), MathJax from the ``jupyter-server-mathjax`` Python package, figures
are embedded, and widget outputs are replaced by their static PNG fallback.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import nbformat

from lora_edu.tools.registry import notebook_paths

TEMPLATE_NAME = "lora-edu-reveal"
# Relative to the working directory (make runs in the repository root), never to this file: after
# a pip install this file lives in site-packages.
DEFAULT_OUT = Path("build") / "slides"
VENDOR = Path("build") / "vendor"

REVEAL_VERSION = "5.2.1"
# sha256 of the npm tarball reveal.js-5.2.1.tgz, checked on every build (also of a cached copy).
REVEAL_SHA256 = "359b575dd51bbda32f89b2fd4c7dc46ad7389a805572158916c29252f7a27333"
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LINES_PER_SLIDE = 24  # what fits at 1280 x 800 before the slide would scroll


# ---------------------------------------------------------------------------------------------
# Cell metadata
# ---------------------------------------------------------------------------------------------

def _cell_lines(cell) -> int:
    """A rough height of a cell on a slide, in lines of text (a picture counts as 14)."""
    n = len(cell.source.splitlines())
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if WIDGET_MIME in data and "image/png" not in data:
            continue  # a live widget is not on a slide (its static PNG, the next output, is)
        if "image/png" in data or "image/svg+xml" in data:
            n += 14
        elif out.get("output_type") == "stream":
            n += len(out.get("text", "").splitlines())
        elif "text/plain" in data:
            n += min(len(data["text/plain"].splitlines()), 10)
    return n


def is_setup_cell(cell, index: int) -> bool:
    """The install cell and the imports cell at the top: needed to run, not to lecture."""
    if cell.cell_type != "code" or index > 3:
        return False
    code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
    return bool(code) and code[0].startswith(("import ", "from "))


def slide_types(nb) -> list[str]:
    """The slide type of every cell of ``nb`` by the course's rule (see the module docstring)."""
    types, budget = [], 0
    for i, cell in enumerate(nb.cells):
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        if i == 0 or (cell.cell_type == "markdown" and first.startswith("## ")):
            kind = "slide"
        elif cell.cell_type == "markdown" and first.startswith("### "):
            kind = "subslide"
        elif is_setup_cell(cell, i):
            types.append("skip")
            continue
        else:
            kind = "subslide" if budget > 0 and budget + _cell_lines(cell) > LINES_PER_SLIDE else "-"
        lines = _cell_lines(cell)
        budget = lines if kind in ("slide", "subslide") else budget + lines
        types.append(kind)
    return types


def annotate(path: str | Path) -> bool:
    """Write :func:`slide_types` into the notebook at ``path``; returns whether anything changed.

    Only ``metadata.slideshow`` is touched: sources, outputs and execution counts stay as they are.
    """
    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell, kind in zip(nb.cells, slide_types(nb), strict=True):
        if cell.metadata.get("slideshow", {}).get("slide_type") != kind:
            cell.metadata["slideshow"] = {"slide_type": kind}
            changed = True
    if changed:
        nbformat.write(nb, str(path))
    return changed


# ---------------------------------------------------------------------------------------------
# Offline assets
# ---------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reveal_tarball(vendor: Path = VENDOR) -> Path:
    """The reveal.js npm tarball: the cached copy in ``vendor``, else ``npm pack`` fetches it once.

    Raises:
        RuntimeError: if it is not cached and npm cannot fetch it (say what to do instead), or if
            the file's checksum is not the pinned one.
    """
    tgz = Path(vendor) / f"reveal.js-{REVEAL_VERSION}.tgz"
    if not tgz.exists():
        tgz.parent.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                f"make slides needs reveal.js {REVEAL_VERSION} once: install Node.js/npm, or download "
                f"https://registry.npmjs.org/reveal.js/-/reveal.js-{REVEAL_VERSION}.tgz into {tgz.parent}")
        print(f"fetching reveal.js {REVEAL_VERSION} with npm (once; cached in {tgz.parent})")
        proc = subprocess.run([npm, "pack", f"reveal.js@{REVEAL_VERSION}", "--pack-destination", str(tgz.parent)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not tgz.exists():
            raise RuntimeError(f"npm pack reveal.js@{REVEAL_VERSION} failed (no registry access?):\n"
                               f"{proc.stderr[-800:]}")
    digest = _sha256(tgz)
    if digest != REVEAL_SHA256:
        raise RuntimeError(f"{tgz} has sha256 {digest}, expected {REVEAL_SHA256}: delete it and run make slides again")
    return tgz


def install_assets(out: Path, vendor: Path = VENDOR) -> dict[str, str]:
    """Put reveal.js and MathJax next to the slides; returns their URLs relative to ``out``."""
    import jupyter_server_mathjax

    reveal = out / "reveal.js"
    if not (reveal / ".version").exists() or (reveal / ".version").read_text() != REVEAL_VERSION:
        shutil.rmtree(reveal, ignore_errors=True)
        with tarfile.open(reveal_tarball(vendor)) as tar:
            keep = [m for m in tar.getmembers()
                    if m.isfile() and m.name.startswith(("package/dist/", "package/plugin/notes/", "package/LICENSE"))
                    and not m.name.endswith(".map")]
            for m in keep:
                target = reveal / m.name.removeprefix("package/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
        (reveal / ".version").write_text(REVEAL_VERSION)
    mathjax = out / "mathjax"
    if not (mathjax / "MathJax.js").exists():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", mathjax)
    return {"reveal": "reveal.js", "mathjax": "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"}


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------

_MD_IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)(\))")


def _rebase_images(source: str, nb_dir: Path, base: Path) -> str:
    """Rewrite relative markdown image paths from ``nb_dir`` to ``base``. nbconvert embeds only
    files *under* the folder it is given, and the notebooks link ``../figures/``."""
    def fix(m: re.Match) -> str:
        url = m.group(2)
        if re.match(r"^[a-z]+:", url) or url.startswith("/"):
            return m.group(0)
        target = (nb_dir / url).resolve()
        return m.group(1) + (target.relative_to(base).as_posix() if target.is_relative_to(base) else url) + m.group(3)
    return _MD_IMAGE.sub(fix, source)


def template_dir() -> Path:
    """The folder of the offline slide template, shipped inside the package (package data)."""
    from importlib.resources import files

    return Path(str(files("lora_edu") / "assets" / "slides_templates"))


def static_copy(nb, nb_dir: Path | None = None, base: Path | None = None):
    """A copy of ``nb`` with widget views dropped, and markdown image paths rewritten from
    ``nb_dir`` to ``base`` when both are given.

    An explorer's live widget is its own output, followed by an output with its static PNG: the
    widget output goes, the PNG stays. (A widget view bundled with a PNG keeps only the PNG.)
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
            data = out.get("data", {})
            if WIDGET_MIME in data:
                if "image/png" not in data:
                    continue  # the note "the widget did not render" is for readers, not an audience
                del data[WIDGET_MIME]
                data.pop("text/plain", None)
            kept.append(out)
        cell.outputs = kept
    return nb


def build_slides(notebooks: list[Path], out: str | Path = DEFAULT_OUT, vendor: Path = VENDOR) -> list[Path]:
    """Convert each notebook to ``out``/<name>.slides.html, with the offline assets beside them."""
    from nbconvert import SlidesExporter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    urls = install_assets(out, vendor)
    exporter = SlidesExporter(
        extra_template_basedirs=[str(template_dir())], template_name=TEMPLATE_NAME,
        reveal_url_prefix=urls["reveal"], mathjax_url=urls["mathjax"],
        embed_images=True,       # markdown figures (../figures/*.png) go inside the file
        reveal_theme="white",    # "simple" imports Google Fonts; "white" has its fonts beside it
        reveal_number="c/t",
    )
    written = []
    for path in notebooks:
        path = Path(path)
        nb = nbformat.read(str(path), as_version=4)
        missing = [i for i, c in enumerate(nb.cells) if "slide_type" not in c.metadata.get("slideshow", {})]
        if missing:
            raise ValueError(f"{path.name}: cells {missing[:5]} have no slideshow metadata; run "
                             f"python -m lora_edu.tools.slides --annotate")
        base = path.parent.resolve().parent     # the repository root: notebooks/ and figures/ are under it
        body, _ = exporter.from_notebook_node(static_copy(nb, path.parent, base),
                                              resources={"metadata": {"path": str(base), "name": path.stem}})
        target = out / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lecture slides from the course notebooks (offline reveal.js).")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebook of lora_edu.tools.registry, in notebooks/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--annotate", action="store_true",
                        help="(authors) write the slide types into the notebooks' cell metadata and exit")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or notebook_paths()
    missing = [str(p) for p in notebooks if not Path(p).is_file()]
    if missing:
        parser.error(f"no such notebook(s): {', '.join(missing)} (run from the repository root, or name them)")
    if args.annotate:
        for nb in notebooks:
            print(f"{nb.name}: {'updated' if annotate(nb) else 'unchanged'}")
        return 0
    for path in build_slides(notebooks, args.out):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"open {args.out / notebooks[0].stem}.slides.html in a browser; arrows move, S opens speaker notes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
