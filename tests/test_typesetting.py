"""Mathematics is typeset as mathematics (issue 18): no ad-hoc subscripts (``_{``, ``^{``) and no
Unicode mathematics (σ, Σ, ‖, ᵀ, ₀, ², ≤, ×, α, ...) in markdown outside ``$...$``, ``$$...$$``,
code spans and code blocks. The check lives in lora_edu.tools.nbcheck
(``python -m lora_edu.tools.nbcheck --only typesetting``)."""

from __future__ import annotations

import nbformat
import pytest
from _helpers import assert_no_problems, each_notebook

from lora_edu.tools import nbcheck


@each_notebook
def test_markdown_mathematics_is_latex(path):
    problems = nbcheck.typesetting_problems(path)
    assert_no_problems(problems, "typesetting", path, "README rule 2")


@pytest.mark.parametrize("text", [
    "the singular values $\\sigma_1 \\ge \\sigma_2$ decay",
    "$$\\|A - A_k\\|_F^2 = \\sum_{i>k} \\sigma_i^2$$",
    "code: `W.T @ x` and `σ` in a span, ``a `σ` b``",
    "```python\nσ = s[0] ** 2  # ≤\n```",
    "a literal \\$5 and $x_{ij}$",
    "\\begin{align} a_{1} &= σ \\end{align}",
    "<!-- σ_{k} -->",
    "a rank-4 update, 25 % fewer, x-axis, LoRA_r",
])
def test_mathematics_and_code_are_allowed(text):
    assert nbcheck.typesetting_problems_in(text) == []


@pytest.mark.parametrize("text, bad", [
    ("the largest σ wins", "σ"),
    ("‖A‖ is the norm", "‖"),
    ("Wᵀ x", "ᵀ"),
    ("x₀ and x₁", "₀"),
    ("r² parameters", "²"),
    ("if k ≤ r", "≤"),
    ("a 768 × 768 matrix", "×"),
    ("scale α / r", "α"),
    ("Σ of the rest", "Σ"),
    ("σ_{k+1} is the error", "_{"),
    ("x^{2} grows", "^{"),
    ("an unclosed $ dollar then σ", "σ"),
])
def test_unicode_math_and_ad_hoc_subscripts_are_reported(text, bad):
    found = nbcheck.typesetting_problems_in(text)
    assert found and any(bad in what for what, _ in found), found


def test_the_report_names_notebook_cell_and_text(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("σ = 1"),
                nbformat.v4.new_markdown_cell("The error is σ_{k+1} here.")]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, str(path))
    problems = nbcheck.typesetting_problems(path)
    assert {p.cell for p in problems} == {2}
    text = "\n".join(str(p) for p in problems)
    assert "demo.ipynb cell 2:" in text and "σ_{k+1}" in text and "\\sigma" in text
