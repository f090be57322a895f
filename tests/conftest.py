"""Fixtures for the real-browser tests (marker ``browser``): headless Chromium, JupyterLab, voila.

Chromium is Debian's (``/usr/bin/chromium``), driven by the ``playwright`` Python package; no
browser is ever downloaded. Where Chromium is missing the browser tests are skipped with the
reason, except under CI (``LORA_EDU_REQUIRE_BROWSER=1``, set by ``.ci/run``), where that fails.
A failing browser test leaves a full-page screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lora_edu.tools.testing import pin_test_environment

# The model pin: every GPT-2 notebook under test loads the shipped offline model, never the hub
# (LORA_EDU_MODEL=fallback, HF_HUB_OFFLINE=1). Set here, at import, before any nbval kernel starts,
# so the kernels inherit it; `make test` gives the same result online and offline.
pin_test_environment()

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LORA_EDU_CHROMIUM", "/usr/bin/chromium")
# The background-networking flags keep Chromium from calling home on a machine with no internet.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_PREFIXES = ("http://127.0.0.1", "http://localhost", "data:", "blob:", "file://", "about:")


FULL_SIZE = "full_size"


def pytest_configure(config):
    config.addinivalue_line("markers", f"{FULL_SIZE}: the full-size gpt2 dry run (~10+ minutes); deselected "
                                       f"unless selected with -m {FULL_SIZE} (make test-full)")


def pytest_collection_modifyitems(config, items):
    # The full-size dry run does not fit CI's time limit: it runs only when asked for by marker.
    # Deselected (and counted as such in pytest's summary), so no other test is hidden.
    if FULL_SIZE in (config.getoption("markexpr") or ""):
        return
    dropped = [item for item in items if item.get_closest_marker(FULL_SIZE)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker(FULL_SIZE)]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, so a fixture can see whether the test failed.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _missing(what: str) -> None:
    if os.environ.get("LORA_EDU_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} (required here: LORA_EDU_REQUIRE_BROWSER=1)")
    pytest.skip(f"{what}; install with `apt-get install -y chromium chromium-driver` and `make venv`")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; records every request that leaves localhost in ``page.external_requests``
    and saves a screenshot to ``test-artifacts/<test>.png`` if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    external: list[str] = []
    pg.on("request", lambda r: None if r.url.startswith(LOCAL_PREFIXES) else external.append(r.url))
    pg.external_requests = external
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"{request.node.name}.png"
        try:
            pg.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failing page: {shot}")
        except Exception as exc:  # the page may be gone; the test's own error matters more
            print(f"could not save a screenshot: {exc}")
    context.close()


class Server:
    """A server process started in its own session, stopped by its own PID (then its group)."""

    def __init__(self, cmd: list[str], url: str, ready_url: str, cwd: Path, log: Path,
                 env: dict[str, str] | None = None, timeout: float = 120.0) -> None:
        self.url, self.log = url, log
        self._log_file = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[2] if len(cmd) > 2 else cmd[0]} exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
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
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
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


def _server_env(root: Path) -> dict[str, str]:
    """The environment of a test server: offline, and with Jupyter's per-user data and runtime
    folders (connection files, the notebook-signing key) inside ``root``, not in the learner's home."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               JUPYTER_DATA_DIR=str(root / "data"), JUPYTER_RUNTIME_DIR=str(root / "runtime"))
    env.pop("JUPYTER_PATH", None)
    return env


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """JupyterLab on a free localhost port with a token, serving a *copy* of notebooks/ (running
    cells in Lab autosaves, and the committed notebooks must not change under a test)."""
    from lora_edu.app import free_port

    root = tmp_path_factory.mktemp("lab")
    nbdir = root / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "figures", root / "figures")  # the notebooks show ../figures/*.png
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    # Lab's own config, settings and workspaces go to the temporary folder too, so a test never
    # touches the learner's ~/.jupyter; the page config turns off the "Jupyter news?" pop-up.
    env = _server_env(root)
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
    yield server
    server.stop()


@pytest.fixture(scope="module")
def voila_app(tmp_path_factory):
    """The classroom app (``make app``) served by voila on a free localhost port."""
    from lora_edu.app import free_port, voila_command, write_app_notebook, write_offline_template

    root = tmp_path_factory.mktemp("app")
    notebook = write_app_notebook(root / "classroom.ipynb")
    data_dir = root / "share"
    write_offline_template(data_dir)
    env = _server_env(root)
    env["JUPYTER_PATH"] = str(data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # voila's tree page answers at once; the notebook page itself runs the notebook first.
    server = Server(voila_command(notebook, port), url, f"{url}voila/static/voila.js", cwd=root,
                    log=root / "voila.log", env=env)
    yield server
    server.stop()
