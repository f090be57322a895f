import re
from pathlib import Path

from lora_edu.tools import figures

ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = ROOT / "figures"


def referenced_figures() -> set[str]:
    texts = [(ROOT / "README.md").read_text()]
    texts += [p.read_text() for p in sorted((ROOT / "notebooks").glob("0*.ipynb"))]
    return set(re.findall(r"figures/([\w\-]+\.(?:png|svg))", "\n".join(texts)))


def test_every_referenced_figure_exists_and_is_made_by_code():
    refs = referenced_figures()
    assert refs, "README and notebooks should show figures from figures/"
    for name in refs:
        assert (FIGURES_DIR / name).is_file(), f"figures/{name} is referenced but missing (run make figures)"
        stem = Path(name).stem
        assert stem in figures.FIGURES or stem in figures.BADGES or stem == "bench", (
            f"figures/{name} is made neither by lora_edu/tools/figures.py nor by make bench")


def test_make_figures_writes_where_it_is_told(tmp_path):
    assert figures.main(["svd_rotate_scale_rotate", "lora_factorisation", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "svd_rotate_scale_rotate.png").stat().st_size > 5_000
    svg = (tmp_path / "lora_factorisation.svg").read_text()
    assert "<svg" in svg and not re.search(r'(?:href|src)="https?://', svg)  # no remote assets
    assert svg == (FIGURES_DIR / "lora_factorisation.svg").read_text(), "figures/ is stale: run make figures"
    assert figures.main(["no_such_figure", "--out", str(tmp_path)]) == 2


def test_badges_are_local_svgs_with_their_text(tmp_path):
    assert figures.main([*figures.BADGES, "--out", str(tmp_path)]) == 0
    for name, (left, right, colour) in figures.BADGES.items():
        svg = (tmp_path / f"{name}.svg").read_text()
        assert svg == (FIGURES_DIR / f"{name}.svg").read_text(), f"figures/{name}.svg is stale: run make figures"
        assert f">{left}<" in svg and f">{right}<" in svg and colour in svg
        assert not re.search(r'(?:href|src)="https?://', svg)
