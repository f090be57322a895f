"""The course as people use it, in a real (headless) browser: JupyterLab and the voila app.

Each test moves a slider the way a learner does (focus the handle, press arrow keys) and checks
that what is on screen changes: the slider's value, the readout text and the picture's pixels.
"""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_ALL_TIMEOUT_MS = 300_000
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen, not one in a hidden tab


def open_and_run_all(page, lab, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, run all cells, wait until all ran."""
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
        timeout=RUN_ALL_TIMEOUT_MS,
    )
    errors = page.locator(f"{PANEL} [data-mime-type='application/vnd.jupyter.stderr']",
                          has_text=re.compile("Traceback|Error"))
    assert errors.count() == 0, errors.first.text_content()


def explorer_state(explorer, slider_index: int = 0) -> dict:
    """What a viewer sees of an explorer: the slider value, the readout text, the picture bytes."""
    img = explorer.locator("img").first
    img.scroll_into_view_if_needed()
    return {
        "value": float(explorer.locator(".noUi-handle").nth(slider_index).get_attribute("aria-valuenow")),
        "readout": explorer.locator(".widget-html").first.text_content(),
        "src": img.get_attribute("src"),
        "pixels": img.screenshot(),
    }


def move_slider(page, explorer, presses: int, key: str = "ArrowRight", slider_index: int = 0) -> dict:
    """Focus a slider handle, press ``key`` ``presses`` times, wait for the picture to change."""
    before = explorer_state(explorer, slider_index)
    handle = explorer.locator(".noUi-handle").nth(slider_index)
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)
    img = explorer.locator("img").first
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[img.element_handle(), before["src"]], timeout=30_000)
    page.wait_for_timeout(300)  # let the last of the key presses' redraws land
    return {"before": before, "after": explorer_state(explorer, slider_index)}


def assert_changed(moved: dict) -> None:
    before, after = moved["before"], moved["after"]
    assert after["value"] != before["value"], "the slider did not move"
    assert after["readout"] != before["readout"], "the readout did not change"
    assert after["src"] != before["src"] and after["pixels"] != before["pixels"], "the picture did not change"


def test_rank_slider_in_notebook_02(page, jupyter_lab):
    open_and_run_all(page, jupyter_lab, "02_svd_truncation.ipynb")
    explorer = page.locator(f"{PANEL} .lora-edu-explorer").first
    explorer.scroll_into_view_if_needed()
    assert "rank k" in explorer.locator(".widget-label").first.text_content()
    moved = move_slider(page, explorer, presses=5)
    assert_changed(moved)
    k0 = int(moved["before"]["value"])
    assert moved["after"]["value"] == k0 + 5
    # The readout names the new rank and a smaller error (more singular values kept).
    err = [float(re.search(r"relative error ([\d.]+) %", s["readout"]).group(1)) for s in moved.values()]
    assert f"k = {k0 + 5}" in moved["after"]["readout"] and err[1] < err[0]
    assert page.external_requests == []


def test_lora_rank_slider_in_notebook_04(page, jupyter_lab):
    open_and_run_all(page, jupyter_lab, "04_lora_from_scratch.ipynb")
    explorer = page.locator(f"{PANEL} .lora-edu-explorer").first
    explorer.scroll_into_view_if_needed()
    assert "rank r" in explorer.locator(".widget-label").first.text_content()
    at_start = float(explorer.locator(".noUi-handle").first.get_attribute("aria-valuenow")) == 0
    moved = move_slider(page, explorer, presses=1, key="ArrowRight" if at_start else "ArrowLeft")
    assert_changed(moved)
    assert page.external_requests == []


def direction(explorer, slider_index: int = 0) -> str:
    """ArrowRight unless the handle is already at its maximum."""
    handle = explorer.locator(".noUi-handle").nth(slider_index)
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
    return "ArrowLeft" if at_max else "ArrowRight"


def test_classroom_app_in_voila(page, voila_app):
    # voila pages link outside assets; ours are removed, but never wait for the full "load" event.
    page.goto(voila_app.url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function("document.querySelectorAll('.lora-edu-explorer').length >= 5", timeout=240_000)
    text = page.locator("body").inner_text()
    assert "lora-edu classroom explorers" in text
    assert "rank_section" not in text and "import" not in text, "voila must not show code"
    explorers = page.locator(".lora-edu-explorer")
    moved = move_slider(page, explorers.first, presses=3)
    assert_changed(moved)
    assert f"k = {int(moved['before']['value']) + 3}" in moved["after"]["readout"]
    # Every other explorer on the page answers a key press too (one per notebook 01, 03, 04, 05).
    for i in range(1, explorers.count()):
        explorer = explorers.nth(i)
        assert_changed(move_slider(page, explorer, presses=1, key=direction(explorer)))
    assert page.external_requests == [], "the app must work with no internet"
