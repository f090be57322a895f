from lora_edu import hub
from lora_edu.tools import check_env


def test_every_requirement_is_checked_with_its_installed_version():
    import importlib.metadata as md

    checks = {c.name: c for c in check_env.run_checks(timeout=0.1)}
    for _module, dist, _why in check_env.REQUIRED:
        assert checks[dist].status == "OK" and checks[dist].detail == md.version(dist), checks[dist].line()
    assert checks["python"].status == "OK"


def test_exit_code_and_summary_follow_the_failures(monkeypatch, capsys):
    fake = [check_env.Check("a", "OK", "1.0"), check_env.Check("b", "INFO", "offline"),
            check_env.Check("c", "FAIL", "missing")]
    monkeypatch.setattr(check_env, "run_checks", lambda timeout=1.5: fake)
    assert check_env.main([]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [c.line() for c in fake] and "2 OK/INFO, 1 FAIL" in out
    monkeypatch.setattr(check_env, "run_checks", lambda timeout=1.5: fake[:2])
    assert check_env.main([]) == 0


def test_a_missing_widgets_labextension_is_a_fail(monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # an environment without the Lab extension files
    c = check_env.check_widgets_extension()
    assert c.status == "FAIL" and "reinstall jupyterlab_widgets" in c.detail


def test_missing_package_is_a_fail(monkeypatch, capsys):
    monkeypatch.setattr(check_env, "REQUIRED", (("no_such_module_xyz", "no-such-dist", "testing"),))
    assert check_env.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL  no-such-dist" in out and "cannot import 'no_such_module_xyz'" in out


def test_old_python_is_a_fail(monkeypatch):
    monkeypatch.setattr(check_env, "MIN_PYTHON", (99, 0))
    assert check_env.check_python().status == "FAIL"


# The hub probe itself (mirrors, proxies, errors, timeouts) is tested in tests/test_loader.py.


def test_offline_env_var_counts_as_unreachable(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LORA_EDU_MODEL", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    assert not hub.probe_hub().online
    c = check_env.check_hub()
    assert c.status == "INFO" and "OFFLINE" in c.detail


def test_ensure_offline_sets_the_variable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=1.5: False)
    assert hub.ensure_offline_if_unreachable() is False
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_missing_classroom_tools_are_info_with_a_hint(monkeypatch, tmp_path):
    import importlib.util
    import shutil

    from lora_edu.tools import slides

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("voila", "playwright") else real(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(slides, "VENDOR", tmp_path)
    monkeypatch.setattr(check_env, "CHROMIUM", tmp_path / "no-chromium")
    app, slide, browser = check_env.check_classroom()
    assert [c.status for c in (app, slide, browser)] == ["INFO"] * 3
    assert "classroom" in app.detail and "npm" in slide.detail and "apt-get install" in browser.detail
