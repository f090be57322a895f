"""JupyterLab and voila in headless Chromium: shared by the browser tests and ``make bench``.

Chromium is Debian's (``/usr/bin/chromium``, or ``$LORA_EDU_CHROMIUM``), driven by the ``playwright``
Python package; no browser is ever downloaded. Servers run on a free localhost port in their own
process session, with Jupyter's data, runtime, config and settings folders inside a folder the
caller owns (never the learner's home), and are stopped by their own process id.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = Path(os.environ.get("LORA_EDU_CHROMIUM", "/usr/bin/chromium"))
# The background-networking flags keep Chromium from calling home on a machine with no internet.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Requests to these never leave the machine.
LOCAL_PREFIXES = ("http://127.0.0.1", "http://localhost", "data:", "blob:", "file://", "about:")
#: The notebook on screen in JupyterLab, not one in a hidden tab.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def browser_missing() -> str | None:
    """Why the browser tools cannot run here (None when Chromium and playwright are present)."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process started in its own session, stopped by its own PID (then its group).

    Args:
        cmd: the command line.
        url: the page to open.
        ready_url: polled until it answers 200 (or ``timeout`` seconds pass, or the process exits).
        cwd, env: of the process.
        log: file that receives its stdout and stderr.
    """

    def __init__(self, cmd: list[str], url: str, ready_url: str, cwd: Path, log: Path,
                 env: dict[str, str] | None = None, timeout: float = 120.0) -> None:
        self.url, self.log = url, log
        self.token = ""
        self._log_file = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd[1:3])} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server at {url} not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines the server wrote (also after :meth:`stop`)."""
        if not self._log_file.closed:
            self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and whatever it left in its process session."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:  # anything it left behind in its session (a kernel that did not exit)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log_file.close()


def server_env(root: Path) -> dict[str, str]:
    """The environment of a server: offline, and with Jupyter's per-user data and runtime folders
    (connection files, the notebook-signing key) inside ``root``, not in the learner's home."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               JUPYTER_DATA_DIR=str(root / "data"), JUPYTER_RUNTIME_DIR=str(root / "runtime"))
    env.pop("JUPYTER_PATH", None)
    return env


def start_lab(root: Path, notebooks: Path, extra: tuple[Path, ...] = ()) -> Server:
    """JupyterLab on a free localhost port with a token, serving a *copy* of ``notebooks``.

    Running cells in Lab autosaves, and the originals must not change, so ``notebooks`` (and each
    folder in ``extra``, e.g. ``figures/`` that the notebooks link as ``../figures``) is copied
    into ``root`` first. Returns the :class:`Server`; ``server.token`` is its token.
    """
    root = Path(root)
    nbdir = root / "notebooks"
    shutil.copytree(notebooks, nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for folder in extra:
        shutil.copytree(folder, root / Path(folder).name)
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    # Lab's own config, settings and workspaces go to root too; the page config turns off the
    # "Jupyter news?" pop-up.
    env = server_env(root)
    env.update(JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"))
    (root / "config" / "labconfig").mkdir(parents=True)
    (root / "config" / "labconfig" / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    # Render every cell (no virtual scrolling), so an output far down the notebook is a real element.
    tracker = root / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    url = f"http://127.0.0.1:{port}/"
    server = Server(cmd, url, f"{url}api/status?token={token}", cwd=nbdir, log=root / "lab.log", env=env)
    server.token = token
    return server


def open_and_run_all(page, lab: Server, notebook: str, timeout_ms: int = 600_000) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, run all cells, wait until all ran.

    Raises:
        AssertionError: if a cell printed a traceback or an error.
    """
    page.goto(f"{lab.url}lab/tree/{notebook}?reset&token={lab.token}", wait_until="domcontentloaded")
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=120_000)
    # The kernel is connected (the status bar names it and says Idle), not merely "no kernel yet".
    page.wait_for_function(
        "() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent ?? '')",
        timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # Done when every code cell has a number and the kernel is idle again; stop early on an error
    # output (Run All then cancels the cells after it, which would otherwise wait forever).
    page.wait_for_function(
        """() => {
            const panel = '.jp-NotebookPanel:not(.lm-mod-hidden)';
            const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')];
            const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
            const error = document.querySelector(panel + " .jp-OutputArea-output[data-mime-type="
                                                 + "'application/vnd.jupyter.stderr']");
            const done = prompts.length > 0 && idle && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            return done || (idle && error && /Error|Traceback/.test(error.textContent));
        }""",
        timeout=timeout_ms,
    )
    errors = page.locator(f"{PANEL} [data-mime-type='application/vnd.jupyter.stderr']",
                          has_text=re.compile("Traceback|Error"))
    assert errors.count() == 0, errors.first.text_content()


# ---------------------------------------------------------------------------------------------
# Slider latency: key press -> new picture, for an explorer and for a no-op widget
# ---------------------------------------------------------------------------------------------

#: A notebook with the floor (a slider that echoes its value into a label: one widget round trip
#: and nothing else) and the explorer under test, side by side in one kernel.
LATENCY_CELLS = (
    "import ipywidgets as w\n"
    "noop = w.IntSlider(value=50, min=0, max=100, description='no-op')\n"
    "echo = w.Label('50')\n"
    "echo.add_class('lora-edu-echo')\n"
    "noop.observe(lambda change: setattr(echo, 'value', str(change['new'])), names='value')\n"
    "box = w.VBox([noop, echo])\n"
    "box.add_class('lora-edu-noop')\n"
    "box",
    "from lora_edu.data import sample_image\n"
    "from lora_edu.widgets import rank_explorer\n"
    "rank_explorer(sample_image(), r=20)",
)

# Resolves with the milliseconds from the key press to the new picture: the readout/label text
# changed, every layer image is a new one and has decoded, and a frame has been painted. Elements
# are looked up again on every change, since a view may replace them rather than edit them.
_WATCH = """
([root, textSelector]) => new Promise(resolve => {
  const text = () => root.querySelector(textSelector)?.textContent;
  const layers = () => [...root.querySelectorAll('img.lora-edu-layer')];
  const before = {text: text(), srcs: layers().map(img => img.src)};
  const options = {subtree: true, childList: true, characterData: true, attributes: true};
  let t0 = null, waiting = false;
  const check = () => {
    if (waiting || t0 === null || text() === before.text) return;
    const now = layers();
    if (!now.every((img, i) => img.src !== before.srcs[i])) return;
    waiting = true;
    observer.disconnect();
    Promise.all(now.map(img => img.decode())).then(
      () => requestAnimationFrame(() => resolve(performance.now() - t0)),
      () => { waiting = false; observer.observe(root, options); check(); });  // replaced while decoding
  };
  const observer = new MutationObserver(check);
  observer.observe(root, options);
  document.addEventListener('keydown', () => { t0 = performance.now(); }, {capture: true, once: true});
  window.__loraEduWatching = true;
})
"""


def key_latency(page, root, text_selector: str, key: str) -> float:
    """Milliseconds from pressing ``key`` on the focused slider of ``root`` to the new picture."""
    handle = root.locator(".noUi-handle").first
    handle.focus()
    watch = page.evaluate_handle(f"(args) => {{ window.__loraEduLatency = ({_WATCH})(args); }}",
                                 [root.element_handle(), text_selector])
    watch.dispose()
    page.keyboard.press(key)
    return float(page.evaluate("window.__loraEduLatency"))


def measure_latency(page, lab: Server, notebook: str, presses: int = 20) -> dict[str, list[float]]:
    """Run the latency notebook (:data:`LATENCY_CELLS`, already in the Lab's folder as ``notebook``)
    and time ``presses`` key presses on each slider, interleaved (no-op, explorer, no-op, ...).

    Returns:
        ``{"noop": [ms, ...], "explorer": [ms, ...]}``.
    """
    open_and_run_all(page, lab, notebook)
    noop = page.locator(f"{PANEL} .lora-edu-noop").first
    explorer = page.locator(f"{PANEL} .lora-edu-explorer").first
    explorer.scroll_into_view_if_needed()
    page.wait_for_function("el => el.querySelector('img.lora-edu-layer')?.complete",
                           arg=explorer.element_handle())
    times: dict[str, list[float]] = {"noop": [], "explorer": []}
    for i in range(presses):
        key = "ArrowRight" if (i // 5) % 2 == 0 else "ArrowLeft"  # stay inside both sliders' ranges
        times["noop"].append(key_latency(page, noop, ".lora-edu-echo", key))
        times["explorer"].append(key_latency(page, explorer, ".lora-edu-readout", key))
    return times


def write_latency_notebook(path: Path) -> Path:
    """Write the notebook of :func:`measure_latency` to ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in LATENCY_CELLS]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
