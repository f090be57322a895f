"""Fixtures for the real-browser tests (marker ``browser``): headless Chromium, JupyterLab, voila.

The servers and Chromium are driven by :mod:`lora_edu.tools.browser` (shared with ``make bench``).
Where Chromium is missing the browser tests are skipped with the reason, except under CI
(``LORA_EDU_REQUIRE_BROWSER=1``, set by ``.ci/run``), where that fails. A failing browser test
leaves a full-page screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lora_edu.tools import browser as B
from lora_edu.tools.testing import pin_test_environment

# The model pin: every GPT-2 notebook under test loads the shipped offline model, never the hub
# (LORA_EDU_MODEL=fallback, HF_HUB_OFFLINE=1). Set here, at import, before any nbval kernel starts,
# so the kernels inherit it; `make test` gives the same result online and offline.
pin_test_environment()

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


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
    why = B.browser_missing()
    if why:
        _missing(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(B.CHROMIUM), args=B.CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; records every request that leaves localhost in ``page.external_requests``
    and saves a screenshot to ``test-artifacts/<test>.png`` if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    external: list[str] = []
    pg.on("request", lambda r: None if r.url.startswith(B.LOCAL_PREFIXES) else external.append(r.url))
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


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """JupyterLab on a free localhost port with a token, serving a *copy* of notebooks/ (running
    cells in Lab autosaves, and the committed notebooks must not change under a test), plus the
    slider-latency notebook of :mod:`lora_edu.tools.browser`."""
    root = tmp_path_factory.mktemp("lab")
    server = B.start_lab(root, ROOT / "notebooks", extra=(ROOT / "figures",))  # notebooks show ../figures/*.png
    B.write_latency_notebook(root / "notebooks" / "latency.ipynb")
    yield server
    server.stop()


def _voila_server(root: Path, target: Path) -> B.Server:
    """voila serving ``target`` (a notebook or a folder) on a free localhost port, offline template in
    ``root/share``; its log is ``root/voila.log``."""
    from lora_edu.tools.app import voila_command, write_offline_template

    data_dir = root / "share"
    write_offline_template(data_dir)
    env = B.server_env(root)
    env["JUPYTER_PATH"] = str(data_dir)
    port = B.free_port()
    url = f"http://127.0.0.1:{port}/"
    # voila's tree page answers at once; the notebook page itself runs the notebook first.
    return B.Server(voila_command(target, port), url, f"{url}voila/static/voila.js", cwd=root,
                    log=root / "voila.log", env=env)


@pytest.fixture(scope="module")
def voila_app(tmp_path_factory):
    """The classroom app (``make app``) served by voila on a free localhost port."""
    from lora_edu.tools.app import write_app_notebook

    root = tmp_path_factory.mktemp("app")
    server = _voila_server(root, write_app_notebook(root / "classroom.ipynb"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def voila_presenter(tmp_path_factory):
    """The presenter mode (``make presenter``): one explorer per screen, voila serving the folder."""
    from lora_edu.tools.app import write_presenter

    root = tmp_path_factory.mktemp("presenter")
    screens = write_presenter(root / "presenter")
    server = _voila_server(root, screens[0].parent)
    server.screens = [p.name for p in screens]
    yield server
    server.stop()
