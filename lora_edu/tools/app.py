"""The classroom app: every slider explorer of the course on one page, served by voila.

``make app`` (``python -m lora_edu.tools.app``) writes a small notebook whose code cells only call
the section builders below (one per notebook that has an app section in
:mod:`lora_edu.tools.registry`), and serves it with voila on localhost. Voila shows outputs and hides the
code, so what a teacher projects is sliders, pictures and numbers. Everything is computed here,
from data that ships with matplotlib and scikit-learn, so the page works with no internet.

Startup trains a few small models (about 25 s on 2 cores); after that a slider move only redraws.

``make presenter`` (``python -m lora_edu.tools.app --presenter``) is the same explorers one per
screen, for projecting: large type, the current value large on screen, the first slider focused so
the arrow keys move it at once, and ``PageDown``/``PageUp`` (or ``n``/``p``) for the next and
previous explorer. Each screen is its own small notebook, so it starts in a few seconds.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from lora_edu._checks import check_int
from lora_edu.tools.registry import app_sections

if TYPE_CHECKING:
    from lora_edu.explorers import Explorer

DEFAULT_NOTEBOOK = Path("build") / "app" / "lora_edu_classroom.ipynb"
DEFAULT_PRESENTER = Path("build") / "app" / "presenter"

#: Presenter screens: type a room can read, the readout's numbers (its <b> parts) very large.
PRESENTER_CSS = """
body, .jp-RenderedHTMLCommon, .widget-label { font-size: 26px !important; }
.jp-RenderedHTMLCommon h1 { font-size: 44px !important; }
.lora-edu-presenter-nav { font-size: 20px; color: #555; }
.lora-edu-explorer .widget-label, .lora-edu-explorer .widget-readout { font-size: 28px !important; }
.lora-edu-explorer .widget-readout { min-width: 4em; }
.lora-edu-readout { font-size: 30px !important; line-height: 1.4; }
.lora-edu-readout b { font-size: 60px; color: #1f4e9c; }
.lora-edu-explorer .noUi-handle:focus { outline: 4px solid #1f4e9c; }
.lora-edu-picture { zoom: 1.4; }
.lora-edu-picture .lora-edu-readout { zoom: 0.7143; }  /* the readout sits in the picture grid: keep it at 30 px */
"""

#: Presenter keys: PageDown / n next screen, PageUp / p previous; the first slider takes the focus.
PRESENTER_JS = """
(function () {
  const nav = {next: %(next)s, prev: %(prev)s};
  if (!window.loraEduPresenterKeys) {
    window.loraEduPresenterKeys = true;
    document.addEventListener('keydown', (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const typing = e.target && /^(INPUT|TEXTAREA)$/.test(e.target.tagName);
      let to = null;
      if (e.key === 'PageDown' || (!typing && e.key === 'n')) to = nav.next;
      if (e.key === 'PageUp' || (!typing && e.key === 'p')) to = nav.prev;
      if (to) { e.preventDefault(); window.location.href = to; }
    });
  }
  const focus = () => {
    const handle = document.querySelector('.lora-edu-explorer .noUi-handle');
    if (handle) { handle.focus(); } else { setTimeout(focus, 200); }
  };
  focus();
})();
"""


def sections() -> list[tuple[str, str, str]]:
    """``(heading, lesson, builder)`` per section, in page order, from the notebook registry."""
    return [(f"{sec.heading} (notebook {nb.number:02d})", sec.lesson, sec.builder) for nb, sec in app_sections()]


def rank_section(size: int = 256, r: int = 20) -> Explorer:
    """The rank explorer on matplotlib's Grace Hopper photo (grayscale, ``size`` x ``size``)."""
    from lora_edu.data import sample_image
    from lora_edu.explorers import rank_explorer

    return rank_explorer(sample_image(size=check_int(size, "size", 16, 1024)), r=r)


def outer_product_section() -> Explorer:
    """The outer-product explorer (a 12 x 10 matrix from up to 10 rank-1 terms plus noise)."""
    from lora_edu.explorers import outer_product_explorer

    return outer_product_explorer()


def autoencoder_section(rs: tuple[int, ...] = (1, 2, 4, 8, 16, 32), nonlinear_rs: tuple[int, ...] = (8, 32),
                        ) -> Explorer:
    """Linear autoencoders (every code size r in ``rs``) and non-linear ones (``nonlinear_rs``) on digits."""
    from lora_edu import autoencoder as AE
    from lora_edu.data import load_digits_data, train_test_split_indices
    from lora_edu.explorers import autoencoder_explorer

    if not rs or any(r not in rs for r in nonlinear_rs):
        raise ValueError(f"nonlinear_rs must be a subset of a non-empty rs, got rs={rs}, nonlinear_rs={nonlinear_rs}")
    X, _ = load_digits_data()
    train, test = train_test_split_indices(len(X), 0.2, 0)
    X_train, mean = AE.center(X[train])
    X_test, _ = AE.center(X[test], mean)
    linear, nonlinear = {}, {}
    for r in rs:
        linear[r] = AE.LinearAutoencoder(64, r)
        AE.train_autoencoder(linear[r], X_train, epochs=1000, lr=0.02, seed=0, progress=False)
    for r in nonlinear_rs:
        nonlinear[r] = AE.NonlinearAutoencoder(64, r, hidden=64)
        AE.train_autoencoder(nonlinear[r], X_train, epochs=150, lr=3e-3, seed=0, batch_size=64, progress=False)
    return autoencoder_explorer(X_train, X_test, mean, linear, nonlinear, n_show=6)


def lora_section(ranks: tuple[int, ...] = (1, 2, 4, 8, 16), epochs: int = 60) -> Explorer:
    """Adapt a digits-0-4 MLP to digits 5-9 with LoRA at each rank, and by full fine-tuning."""
    import torch

    from lora_edu import lora as L
    from lora_edu._utils import count_parameters
    from lora_edu.explorers import lora_rank_explorer
    from lora_edu.tasks import DigitsMLP, accuracy, digits_shift_task, train_classifier

    task = digits_shift_task(test_fraction=0.3, seed=0)
    base = DigitsMLP(hidden=128, seed=0)
    train_classifier(base, task.source_train, epochs=epochs, lr=1e-3, seed=0)
    results = {}
    for r in ranks:
        model = L.add_lora(copy.deepcopy(base), ["fc1", "fc2"], r=r, alpha=2 * r)
        L.mark_only_lora_as_trainable(model)
        model.head.requires_grad_(True)
        train_classifier(model, task.target_train, epochs=epochs, lr=3e-3, seed=0)
        results[r] = dict(singular_values=torch.linalg.svdvals(model.fc2.delta_weight().detach()).numpy(),
                          accuracy=accuracy(model, task.target_test), trainable=count_parameters(model)[0])
    full = copy.deepcopy(base)
    train_classifier(full, task.target_train, epochs=epochs, lr=1e-3, seed=0)
    full_delta = (full.fc2.weight - base.fc2.weight).detach()
    return lora_rank_explorer(results, full_spectrum=torch.linalg.svdvals(full_delta).numpy(),
                              full_accuracy=accuracy(full, task.target_test))


def quantization_section(shape: tuple[int, int] = (256, 256), seed: int = 0) -> Explorer:
    """A Gaussian weight (std 0.02, like GPT-2's initialisation) with one outlier 50x its max."""
    import torch

    from lora_edu.explorers import quantization_explorer

    g = torch.Generator().manual_seed(seed)
    w = 0.02 * torch.randn(*shape, generator=g)
    w[0, 0] = 50 * w.abs().max()
    return quantization_explorer(w, name="Gaussian weight with one outlier")


def qpissa_section(layer: int = 0, matrix: str = "attn.c_attn") -> Explorer:
    """QLoRA vs QPiSSA (notebook 07) on one weight of the shipped offline GPT-2, lora-edu/tiny-gpt2.

    Reads the one tensor from ``lora_edu/assets/tiny_gpt2/model.safetensors`` (no model is built);
    ``Conv1D`` stores it (k, d), so the explorer gets its transpose, the (d, k) matrix.
    """
    from safetensors import safe_open

    from lora_edu.explorers import qpissa_explorer
    from lora_edu.gpt2 import FALLBACK_DIR

    key = f"transformer.h.{check_int(layer, 'layer', 0)}.{matrix}.weight"
    with safe_open(str(FALLBACK_DIR / "model.safetensors"), framework="pt") as f:
        if key not in f.keys():
            raise ValueError(f"no weight {key!r} in the offline GPT-2 (layer or matrix out of range)")
        weight = f.get_tensor(key)
    return qpissa_explorer(weight.T, name=f"offline GPT-2, block {layer} {matrix}")


def app_notebook() -> nbformat.NotebookNode:
    """The notebook voila serves: a title, then a heading, one line and one builder call per section."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "# lora-edu classroom explorers\n\n"
        "Every slider of the course on one page. Drag a slider, or click it and use the arrow keys. "
        "Computed on this machine; no internet needed. The notebooks explain each picture."))
    nb.cells.append(nbformat.v4.new_code_cell("from lora_edu.tools import app"))
    for heading, lesson, builder in sections():
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {heading}\n\n{lesson}"))
        # live only: the page always has a kernel, so the static picture would never be seen
        nb.cells.append(nbformat.v4.new_code_cell(f"app.{builder}().show(static=False)"))
    return nb


def presenter_head(next: str, prev: str) -> str:
    """The style sheet and key handling of a presenter screen (``next``/``prev``: JS values)."""
    return f"<style>{PRESENTER_CSS}</style><script>{PRESENTER_JS % {'next': next, 'prev': prev}}</script>"


def presenter_name(k: int, builder: str) -> str:
    """The file name of presenter screen ``k`` (1-based) for ``builder``."""
    return f"{k:02d}_{builder.removesuffix('_section')}.ipynb"


def presenter_notebooks() -> list[tuple[str, nbformat.NotebookNode]]:
    """``(file name, notebook)`` per presenter screen: one explorer each, in the app's order."""
    secs = sections()
    names = [presenter_name(k, builder) for k, (_, _, builder) in enumerate(secs, 1)]
    out = []
    for k, (heading, lesson, builder) in enumerate(secs):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        prev = repr(names[k - 1]) if k > 0 else "null"
        nxt = repr(names[k + 1]) if k + 1 < len(names) else "null"
        nb.cells.append(nbformat.v4.new_markdown_cell(
            f"# {heading}\n\n{lesson}\n\n<span class=\"lora-edu-presenter-nav\">{k + 1} / {len(names)} "
            "&nbsp; arrow keys: the slider &nbsp; PageDown / n: next &nbsp; PageUp / p: previous</span>"))
        nb.cells.append(nbformat.v4.new_code_cell(
            "from IPython.display import HTML, display\n\nfrom lora_edu.tools import app\n\n"
            f"display(HTML(app.presenter_head(next={nxt!r}, prev={prev!r})))\n"
            f"app.{builder}().show(static=False)"))
        out.append((names[k], nb))
    return out


def write_presenter(folder: str | Path = DEFAULT_PRESENTER) -> list[Path]:
    """Write :func:`presenter_notebooks` into ``folder`` (generated files, rewritten every run)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.ipynb"):
        old.unlink()
    written = []
    for name, nb in presenter_notebooks():
        nbformat.write(nb, str(folder / name))
        written.append(folder / name)
    return written


def write_app_notebook(path: str | Path = DEFAULT_NOTEBOOK, *, overwrite: bool = True) -> Path:
    """Write :func:`app_notebook` to ``path`` (a generated file: it is rewritten on every run).

    Raises:
        FileExistsError: if ``overwrite`` is False and ``path`` exists.
    """
    path = Path(path)
    if path.suffix != ".ipynb":
        raise ValueError(f"path must end in .ipynb, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(app_notebook(), str(path))
    return path


OFFLINE_TEMPLATE = "lora-edu-offline"


def write_offline_template(data_dir: str | Path) -> Path:
    """Copy voila's ``lab`` template to ``data_dir``/voila/templates/lora-edu-offline, minus its CDN links.

    Voila's lab page links two Font Awesome style sheets on a CDN. Nothing on our page needs them,
    and in a classroom with no internet they only fail (and would leak a request when online). The
    copy is made from the installed voila every time, so it always matches its version.
    """
    from jupyter_core.paths import jupyter_path

    found = [Path(d) for d in jupyter_path("voila", "templates", "lab") if (Path(d) / "index.html.j2").exists()]
    if not found:
        raise FileNotFoundError("voila's lab template was not found in the Jupyter data paths: pip install voila")
    lab = found[0]
    out = Path(data_dir) / "voila" / "templates" / OFFLINE_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    for f in lab.iterdir():
        if f.is_file():
            text = f.read_text()
            if f.name == "index.html.j2":
                text = "\n".join(line for line in text.splitlines() if "://cdn." not in line) + "\n"
            (out / f.name).write_text(text)
    # Inherit everything else (voila's and nbconvert's lab templates, then base) from "lab".
    (out / "conf.json").write_text('{"base_template": "lab"}\n')
    return out


def voila_command(notebook: str | Path, port: int, *, open_browser: bool = False) -> list[str]:
    """The voila command line that serves ``notebook`` on 127.0.0.1:``port`` with code hidden.

    Run it with ``JUPYTER_PATH`` pointing at the ``data_dir`` given to :func:`write_offline_template`.
    """
    port = check_int(port, "port", 1, 65535)
    return [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1",
            f"--template={OFFLINE_TEMPLATE}", "--strip_sources=True", "--theme=light",
            f"--Voila.open_browser={open_browser}",
            # A slow section (the LoRA sweep) must not hit voila's default 30 s cell timeout.
            "--VoilaExecutor.timeout=600"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog="Stop the server with Ctrl-C.")
    parser.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    parser.add_argument("--notebook", default=str(DEFAULT_NOTEBOOK), help="where to write the app notebook")
    parser.add_argument("--write-only", action="store_true", help="write the notebook and exit")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument("--presenter", action="store_true",
                        help="one explorer per screen in large type, for projecting (PageDown/PageUp move)")
    args = parser.parse_args(argv)
    if args.presenter:
        screens = write_presenter(Path(args.notebook).parent / "presenter")
        print(f"wrote {len(screens)} presenter screens in {screens[0].parent}")
        path = screens[0]
        target = screens[0].parent
    else:
        path = target = write_app_notebook(args.notebook)
        print(f"wrote {path} ({len(sections())} explorers)")
    if args.write_only:
        return 0
    data_dir = Path(args.notebook).parent / "share"
    write_offline_template(data_dir)
    env = dict(os.environ, JUPYTER_PATH=os.pathsep.join(filter(None, [str(data_dir), os.environ.get("JUPYTER_PATH")])))
    if args.presenter:
        url = f"http://127.0.0.1:{args.port}/voila/render/{path.name}"
        print(f"presenter mode at {url}  (each screen starts in a few seconds; PageDown: next explorer)")
    else:
        print(f"serving at http://127.0.0.1:{args.port}/  (first load trains small models, about 20 s)")
    return subprocess.call(voila_command(target, args.port, open_browser=not args.no_browser), env=env)


if __name__ == "__main__":
    raise SystemExit(main())
