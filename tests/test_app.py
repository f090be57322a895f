"""make app: the generated voila notebook, the offline template and the command line."""

from __future__ import annotations

import json

import nbformat
import pytest

from lora_edu.tools import app, registry


def test_app_sections_come_from_the_registry_headline_first():
    with_app = [nb for nb in registry.NOTEBOOKS if nb.app is not None]
    sections = app.sections()
    assert len(sections) == len(with_app) and len(sections) >= 5
    assert sections[0][0].endswith(f"(notebook {registry.APP_FIRST:02d})")
    numbers = [int(heading[-3:-1]) for heading, _, _ in sections[1:]]
    assert numbers == sorted(numbers)  # then notebook order
    assert {b for _, _, b in sections} == {nb.app.builder for nb in with_app}


def test_app_notebook_calls_every_section_builder_live_only():
    nb = app.app_notebook()
    calls = [c.source for c in nb.cells if c.cell_type == "code"][1:]
    assert calls == [f"app.{builder}().show(static=False)" for _, _, builder in app.sections()]
    assert all(callable(getattr(app, builder)) for _, _, builder in app.sections())
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"][1:]
    assert headings == [f"## {heading}" for heading, _, _ in app.sections()]


def test_write_app_notebook_validates_and_respects_overwrite(tmp_path):
    with pytest.raises(ValueError, match="path must end in .ipynb"):
        app.write_app_notebook(tmp_path / "app.txt")
    path = app.write_app_notebook(tmp_path / "deep" / "app.ipynb")
    assert nbformat.read(str(path), as_version=4).cells[0].source.startswith("# lora-edu classroom")
    with pytest.raises(FileExistsError):
        app.write_app_notebook(path, overwrite=False)


def test_offline_template_drops_the_cdn_links_and_inherits_lab(tmp_path):
    out = app.write_offline_template(tmp_path)
    page = (out / "index.html.j2").read_text()
    assert "://cdn." not in page and "extends" in page
    assert json.loads((out / "conf.json").read_text()) == {"base_template": "lab"}


def test_voila_command_hides_code_on_localhost_and_checks_the_port(tmp_path):
    cmd = app.voila_command(tmp_path / "a.ipynb", 8899)
    assert "--port=8899" in cmd and "--Voila.ip=127.0.0.1" in cmd and "--strip_sources=True" in cmd
    assert f"--template={app.OFFLINE_TEMPLATE}" in cmd
    with pytest.raises(ValueError, match="port"):
        app.voila_command(tmp_path / "a.ipynb", 70000)


def test_fast_sections_build_explorers():
    rank = app.rank_section(size=64, r=5)
    assert rank.slider.value == 5 and rank.slider.max == 64 and "lora-edu-explorer" in rank.widget._dom_classes
    quant = app.quantization_section(shape=(32, 32))
    assert quant.zeros["per-tensor"][4] == 32 * 32 - 1  # the outlier pushes every other weight to 0
    with pytest.raises(ValueError, match="size"):
        app.rank_section(size=4)
    with pytest.raises(ValueError, match="nonlinear_rs"):
        app.autoencoder_section(rs=(1, 2), nonlinear_rs=(4,))


def test_presenter_screens_one_explorer_each_linked_in_order(tmp_path):
    screens = app.write_presenter(tmp_path / "presenter")
    secs = app.sections()
    assert [p.name for p in screens] == [app.presenter_name(k, b) for k, (_, _, b) in enumerate(secs, 1)]
    for k, (path, (heading, _, builder)) in enumerate(zip(screens, secs, strict=True)):
        nb = nbformat.read(str(path), as_version=4)
        assert nb.cells[0].source.startswith(f"# {heading}") and f"{k + 1} / {len(secs)}" in nb.cells[0].source
        code = nb.cells[1].source
        assert f"app.{builder}().show(static=False)" in code
        nxt = repr(screens[k + 1].name) if k + 1 < len(screens) else "null"
        assert f"next={nxt!r}" in code
    head = app.presenter_head(next="'b.ipynb'", prev="null")
    assert "<style>" in head and "PageDown" in head and "'b.ipynb'" in head and "font-size: 60px" in head
    app.write_presenter(tmp_path / "presenter")   # rewritten, not added to
    assert len(list((tmp_path / "presenter").glob("*.ipynb"))) == len(secs)


def test_qpissa_section_reads_the_shipped_weight():
    qp = app.qpissa_section()
    assert qp.shape == (384, 128) and qp.errors[0] > qp.errors[16]   # the top 16 out of NF4: smaller error
    with pytest.raises(ValueError, match="layer or matrix"):
        app.qpissa_section(layer=99)
