"""The course as people use it, in a real (headless) browser: JupyterLab, the voila app, nbconvert HTML.

Each slider test moves a slider the way a learner does (focus the handle, press arrow keys, or drag
it) and checks that what is on screen changes: the slider's value, the readout text and the
picture (its moving pixels and marks). Timings are printed, never asserted (``make bench`` reports
the latency ratio).
"""

from __future__ import annotations

import re
import statistics

import pytest

from lora_edu.tools.browser import LOCAL_PREFIXES, PANEL, measure_latency, open_and_run_all

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What a viewer sees change when an explorer moves: every layer's source and the SVG marks.
PICTURE = """el => [...el.querySelectorAll('.lora-edu-layer')].map(img => img.src).join(' ')
                   + (el.querySelector('.lora-edu-overlay svg')?.outerHTML ?? '')"""


def explorer_state(explorer, slider_index: int = 0) -> dict:
    """What a viewer sees of an explorer: the slider value, the readout text, the picture."""
    picture = explorer.locator(".lora-edu-picture").first
    picture.scroll_into_view_if_needed()
    return {
        "value": float(explorer.locator(".noUi-handle").nth(slider_index).get_attribute("aria-valuenow")),
        "readout": explorer.locator(".lora-edu-readout").first.text_content(),
        "picture": explorer.evaluate(PICTURE),
        "pixels": picture.screenshot(),
    }


def move_slider(page, explorer, presses: int, key: str = "ArrowRight", slider_index: int = 0) -> dict:
    """Focus a slider handle, press ``key`` ``presses`` times, wait for the picture to change."""
    before = explorer_state(explorer, slider_index)
    handle = explorer.locator(".noUi-handle").nth(slider_index)
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)
    page.wait_for_function(f"([el, before]) => ({PICTURE})(el) !== before",
                           arg=[explorer.element_handle(), before["picture"]], timeout=30_000)
    page.wait_for_timeout(300)  # let the last of the key presses' redraws land
    return {"before": before, "after": explorer_state(explorer, slider_index)}


def assert_changed(moved: dict) -> None:
    before, after = moved["before"], moved["after"]
    assert after["value"] != before["value"], "the slider did not move"
    assert after["readout"] != before["readout"], "the readout did not change"
    assert after["picture"] != before["picture"] and after["pixels"] != before["pixels"], "the picture did not change"


def direction(explorer, slider_index: int = 0) -> str:
    """ArrowRight unless the handle is already at its maximum."""
    handle = explorer.locator(".noUi-handle").nth(slider_index)
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
    return "ArrowLeft" if at_max else "ArrowRight"


# Counts the distinct pictures shown while the mouse button is down (a move may replace the
# layer elements or change their source).
COUNT_FRAMES = """el => {
  const seen = new Set([[...el.querySelectorAll('.lora-edu-layer')].map(i => i.src).join(' ')]);
  const observer = new MutationObserver(() =>
      seen.add([...el.querySelectorAll('.lora-edu-layer')].map(i => i.src).join(' ')));
  observer.observe(el, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  window.__loraEduFrames = () => { observer.disconnect(); return seen.size - 1; };
}"""


def test_rank_slider_in_notebook_02(page, jupyter_lab):
    open_and_run_all(page, jupyter_lab, "02_svd_truncation.ipynb")
    explorer = page.locator(f"{PANEL} .lora-edu-explorer").first
    explorer.scroll_into_view_if_needed()
    assert "rank r" in explorer.locator(".widget-hslider .widget-label").first.text_content()
    moved = move_slider(page, explorer, presses=5)
    assert_changed(moved)
    r0 = int(moved["before"]["value"])
    assert moved["after"]["value"] == r0 + 5
    # The readout names the new rank and a smaller error (more singular values kept).
    err = [float(re.search(r"relative error ([\d.]+) %", s["readout"]).group(1)) for s in moved.values()]
    assert f"r = {r0 + 5}" in moved["after"]["readout"] and err[1] < err[0]

    # The live widget renders, so the static picture after it is hidden (no figure twice).
    display = explorer.evaluate("el => getComputedStyle(el.closest('.jp-OutputArea-child').nextElementSibling"
                                ".querySelector('[data-mime-type=\"image/png\"]').closest('.jp-OutputArea-child'))"
                                ".display")
    assert display == "none"

    # Dragging across 20 values shows pictures on the way, not only the one at release.
    box = explorer.locator(".noUi-handle").first.bounding_box()
    track = explorer.locator(".noUi-target").first.bounding_box()
    per_value = track["width"] / float(explorer.locator(".noUi-handle").first.get_attribute("aria-valuemax"))
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    explorer.evaluate(COUNT_FRAMES)
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + step * per_value, y)
        page.wait_for_timeout(60)  # a deliberate drag: 20 values in about 1.2 s
    frames = page.evaluate("window.__loraEduFrames()")
    page.mouse.up()
    print(f"drag across 20 values: {frames} pictures shown before the mouse button was released")
    assert frames >= 3, f"only {frames} picture(s) while dragging: the slider freezes until release"
    assert page.external_requests == []


def test_lora_rank_slider_in_notebook_04(page, jupyter_lab):
    open_and_run_all(page, jupyter_lab, "04_lora_from_scratch.ipynb")
    explorer = page.locator(f"{PANEL} .lora-edu-explorer").first
    explorer.scroll_into_view_if_needed()
    assert "rank r" in explorer.locator(".widget-hslider .widget-label").first.text_content()
    moved = move_slider(page, explorer, presses=1, key=direction(explorer))
    assert_changed(moved)
    assert page.external_requests == []


def test_slider_latency_is_measured_against_a_no_op_widget(page, jupyter_lab):
    times = measure_latency(page, jupyter_lab, "latency.ipynb", presses=6)
    assert set(times) == {"noop", "explorer"} and all(len(v) == 6 for v in times.values())
    assert all(0 < t < 30_000 for v in times.values() for t in v)
    noop, explorer = (statistics.median(times[k]) for k in ("noop", "explorer"))
    print(f"key press -> new picture: explorer {explorer:.0f} ms, no-op widget {noop:.0f} ms, "
          f"ratio {explorer / noop:.2f} (make bench measures it with more presses)")


def test_classroom_app_in_voila(page, voila_app):
    # voila pages link outside assets; ours are removed, but never wait for the full "load" event.
    page.goto(voila_app.url, wait_until="domcontentloaded", timeout=600_000)  # voila runs the sections first
    page.wait_for_function("document.querySelectorAll('.lora-edu-explorer').length >= 5", timeout=240_000)
    text = page.locator("body").inner_text()
    assert "lora-edu classroom explorers" in text
    assert "rank_section" not in text and "import" not in text, "voila must not show code"
    assert page.locator("[data-mime-type='image/png']").count() == 0, "the app shows live explorers only"
    explorers = page.locator(".lora-edu-explorer")
    moved = move_slider(page, explorers.first, presses=3)
    assert_changed(moved)
    assert f"r = {int(moved['before']['value']) + 3}" in moved["after"]["readout"]
    # Every other explorer on the page answers a key press too (one per notebook 01, 03, 04, 05, 07).
    for i in range(1, explorers.count()):
        explorer = explorers.nth(i)
        assert_changed(move_slider(page, explorer, presses=1, key=direction(explorer)))
    assert page.external_requests == [], "the app must work with no internet"


def test_nbconvert_html_shows_the_static_picture_offline(page, tmp_path):
    """An executed notebook exported with ``jupyter nbconvert --to html`` (widget state stored, as
    ``make execute`` stores it): with no widget JavaScript (offline) the reader sees the PNG."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nfrom lora_edu.widgets import rank_explorer\n"
                                          "rank_explorer(np.add.outer(np.arange(40.0), np.arange(30.0)) ** 0.5, r=1)")]
    ExecutePreprocessor(timeout=300, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert nb.metadata.get("widgets"), "the widget state is stored with the notebook"
    live, static = nb.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in live["data"] and "image/png" in static["data"]
    html, _ = HTMLExporter().from_notebook_node(nb)
    png = static["data"]["image/png"]
    assert f'src="data:image/png;base64,{png}' in html
    path = tmp_path / "explorer.html"
    path.write_text(html, encoding="utf-8")
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_PREFIXES)
               else route.abort())  # no internet: nbconvert's widget JavaScript comes from a CDN
    page.goto(path.as_uri(), wait_until="load")
    img = page.locator(f'img[src^="data:image/png;base64,{png[:60]}"]')
    assert img.count() == 1 and img.is_visible()
    assert img.evaluate("el => el.naturalWidth") > 800 and img.bounding_box()["height"] > 100


def test_presenter_mode_one_explorer_per_screen_with_the_keyboard(page, voila_presenter):
    """make presenter: large type, the slider focused on load, arrow keys move it and the large value
    changes, PageDown goes to the next explorer, nothing leaves localhost."""
    first, second = voila_presenter.screens[:2]
    page.goto(f"{voila_presenter.url}voila/render/{first}", wait_until="domcontentloaded", timeout=600_000)
    page.wait_for_function("document.querySelectorAll('.lora-edu-explorer').length === 1", timeout=240_000)
    big = page.locator(".lora-edu-readout b").first
    assert float(big.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 48, "the value must be large"
    page.wait_for_function("document.activeElement && document.activeElement.classList.contains('noUi-handle')",
                           timeout=30_000)   # the slider has the focus: the arrow keys work at once
    value = "document.querySelector('.lora-edu-readout b').innerText"
    before = page.evaluate(value)
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"before => {value} !== before", arg=before, timeout=30_000)
    assert page.evaluate(value) != before
    page.keyboard.press("PageDown")
    page.wait_for_url(f"**/voila/render/{second}", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.lora-edu-explorer').length === 1", timeout=240_000)
    assert "2 / " in page.locator("body").inner_text()
    page.keyboard.press("PageUp")
    page.wait_for_url(f"**/voila/render/{first}", timeout=30_000)
    assert page.external_requests == [], "the presenter mode must work with no internet"
