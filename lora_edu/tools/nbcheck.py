"""Checks of the committed notebooks that a machine can make: typesetting and hygiene.

* :func:`typesetting_problems` - every formula in markdown is LaTeX: no ad-hoc subscripts
  (``σ_{k+1}``, ``x^{2}``) and no Unicode mathematics (``σᵢ``, ``‖A‖``, ``Σ``, ``ᵀ``, ``₀``, ``²``,
  ``≤``, ``×``, ``α``) outside ``$...$``, ``$$...$$``, ``\\begin{..}...\\end{..}``, code spans and
  code blocks (README, "Rules for whoever edits a notebook", rule 2).
* :func:`hygiene_problems` - a notebook is committed executed top to bottom in a fresh kernel with
  nothing a reader should not see: execution counts 1..N, no error or stderr outputs, no frozen
  progress bars, no known library noise, no remote images, no exercise answer cells that only
  assert (``assert not check_...``).

``python -m lora_edu.tools.nbcheck [NOTEBOOK ...]`` prints every problem (all notebooks of the
registry by default) and exits 1 if there is one; ``tests/test_typesetting.py`` and
``tests/test_notebook_hygiene.py`` run the same functions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Typesetting
# ---------------------------------------------------------------------------------------------

#: Characters that are mathematics and belong inside $...$ (with what to write instead, where short).
UNICODE_MATH_RANGES = (
    (0x0391, 0x03A9, "Greek capital letter"),        # Α..Ω (Σ, Δ, Φ, ...)
    (0x03B1, 0x03C9, "Greek letter"),                # α..ω
    (0x03D0, 0x03F6, "Greek symbol"),                # ϑ ϕ ϵ ...
    (0x2070, 0x209F, "superscript/subscript"),       # ⁰ⁱ⁴..⁹ ⁺⁻ ₀..₉ ₐₑᵢ...
    (0x1D2C, 0x1D6A, "modifier letter"),             # ᵀ ᵢ ᵣ ...
    (0x2200, 0x22FF, "mathematical operator"),       # ∈ ∑ − ≤ ≥ ≈ ≠ ⊤ √ ∞ ∂ ∇ ...
    (0x27C0, 0x27EF, "mathematical symbol"),         # ⟨ ⟩ ...
    (0x2A00, 0x2AFF, "mathematical operator"),       # ⨁ ⩽ ...
    (0x1D400, 0x1D7FF, "mathematical letter"),       # 𝐖 𝑥 ...
)
UNICODE_MATH_CHARS = {
    "\u00b2": "superscript two", "\u00b3": "superscript three", "\u00b9": "superscript one",
    "\u00d7": "multiplication sign", "\u00f7": "division sign", "\u00b1": "plus-minus sign",
"\u2016": "double vertical line (norm)", "\u00b5": "micro sign",
}
LATEX_HINT = {
    "σ": r"\sigma", "Σ": r"\Sigma", "α": r"\alpha", "Δ": r"\Delta", "‖": r"\|", "ᵀ": r"^\top", "≤": r"\le",
    "≥": r"\ge", "×": r"\times", "²": "^2", "−": "-", "≈": r"\approx", "∈": r"\in",
    "λ": r"\lambda", "θ": r"\theta", "φ": r"\varphi", "μ": r"\mu", "ε": r"\varepsilon", "≠": r"\neq",
    "√": r"\sqrt{}", "∑": r"\sum", "₀": "_0", "₁": "_1", "ᵢ": "_i", "ₖ": "_k",
}
AD_HOC = re.compile(r"[_^]\{")


def _unicode_math_kind(ch: str) -> str | None:
    if ch in UNICODE_MATH_CHARS:
        return UNICODE_MATH_CHARS[ch]
    cp = ord(ch)
    for lo, hi, kind in UNICODE_MATH_RANGES:
        if lo <= cp <= hi:
            return kind
    return None


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def prose_only(text: str) -> str:
    """``text`` with mathematics and code blanked out (same length, newlines kept).

    Blanked: fenced code blocks, code spans (any backtick run up to the same run), ``$$...$$``,
    ``$...$`` (``\\$`` is a literal dollar), ``\\begin{env}...\\end{env}`` and HTML comments. An
    unclosed ``$`` or code span is left as prose, so what follows it is still checked.
    """
    out = list(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    # fenced code blocks, line by line
    pos, fence = 0, None
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if fence is None and m:
            fence, start = m.group(1), pos
        elif fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                and not line.strip().strip(fence[0]):
            blank(start, pos + len(line))
            fence = None
        pos += len(line)
    if fence is not None:
        blank(start, len(text))
    text = "".join(out)

    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and text.startswith("\\$", i):
            i += 2
            continue
        if ch == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            m = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(text, i + run)
            if m:
                blank(i, m.end())
                i = m.end()
            else:
                i += run
            continue
        if text.startswith("$$", i):
            j = text.find("$$", i + 2)
            if j != -1:
                blank(i, j + 2)
                i = j + 2
                continue
        if ch == "$":
            j = i + 1
            while j < n and not (text[j] == "$" and text[j - 1] != "\\"):
                if text[j] == "\n" and j + 1 < n and text[j + 1] == "\n":  # inline math ends at a paragraph
                    j = n
                    break
                j += 1
            if j < n:
                blank(i, j + 1)
                i = j + 1
                continue
        if text.startswith("\\begin{", i):
            m = re.match(r"\\begin\{([^}]+)\}", text[i:])
            end = text.find(f"\\end{{{m.group(1)}}}", i) if m else -1
            if end != -1:
                stop = end + len(f"\\end{{{m.group(1)}}}")
                blank(i, stop)
                i = stop
                continue
        if text.startswith("<!--", i):
            j = text.find("-->", i)
            if j != -1:
                blank(i, j + 3)
                i = j + 3
                continue
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Problem:
    """One finding: the notebook, the cell index (0-based over all cells), what and where."""

    notebook: str
    cell: int
    what: str
    excerpt: str = ""

    def __str__(self) -> str:
        where = f"{self.notebook} cell {self.cell}"
        return f"{where}: {self.what}" + (f"\n    ...{self.excerpt}..." if self.excerpt else "")


def _excerpt(text: str, a: int, b: int, width: int = 40) -> str:
    lo, hi = max(0, a - width), min(len(text), b + width)
    return text[lo:hi].replace("\n", " ")


def typesetting_problems_in(source: str) -> list[tuple[str, str]]:
    """``(what, excerpt)`` for each ad-hoc subscript or Unicode math character outside math and code."""
    prose = prose_only(source)
    found = []
    for m in AD_HOC.finditer(prose):
        found.append((f"ad-hoc {'subscript' if m.group()[0] == '_' else 'superscript'} {m.group()!r} outside "
                      f"$...$: write the formula in LaTeX", _excerpt(source, m.start(), m.end())))
    seen: set[str] = set()
    for k, ch in enumerate(prose):
        kind = _unicode_math_kind(ch)
        if kind is None or ch in seen:
            continue
        seen.add(ch)
        hint = f" (LaTeX: ${LATEX_HINT[ch]}$)" if ch in LATEX_HINT else ""
        found.append((f"Unicode math {ch!r} (U+{ord(ch):04X}, {kind}) outside $...${hint}",
                      _excerpt(source, k, k + 1)))
    return found


def _cells(nb: dict) -> list[dict]:
    return nb["cells"]


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def typesetting_problems(path: str | Path) -> list[Problem]:
    """Every typesetting problem in the markdown cells of the notebook at ``path``."""
    path = Path(path)
    problems = []
    for i, cell in enumerate(_cells(load(path))):
        if cell["cell_type"] != "markdown":
            continue
        for what, excerpt in typesetting_problems_in(_src(cell)):
            problems.append(Problem(path.name, i, what, excerpt))
    return problems


# ---------------------------------------------------------------------------------------------
# Hygiene
# ---------------------------------------------------------------------------------------------

#: Output text that must never be committed: a harmless library message is silenced at its source
#: (``lora_edu._utils.quiet_libraries``), a progress bar is the course's text bar (``progress()``).
NOISE = (
    (re.compile(r"\b0%\|"), "a frozen progress bar (0%|): use lora_edu._utils.progress"),
    (re.compile(r"\d+(\.\d+)?(it|s)/(s|it)\]"), "a tqdm bar with a rate (not the course's progress())"),
    (re.compile(r"Failed to load CPU gemm_4bit_forward"), "bitsandbytes' kernels-community message"),
    (re.compile(r"`loss_type=None` was set"), "transformers' loss_type message"),
    (re.compile(r"\b\w*Warning: "), "a warning"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"huggingface/tokenizers: The current process just got forked"), "the tokenizers fork message"),
    (re.compile(r"TqdmWarning|IProgress not found"), "tqdm/ipywidgets noise"),
)
#: A text progress bar as stored: "desc: 100%|#####| 40/40 [00:01]". Stored unfinished, it is frozen.
PROGRESS_BAR = re.compile(r"(\d+)%\|[^|\n]*\|\s*(\d+)/(\d+)")
REMOTE_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?(https?:)?//|<img[^>]+src=[\"'](https?:)?//", re.I)
ANSWER_ASSERT = re.compile(r"^\s*assert\s+not\s+check_", re.M)


def _output_text(out: dict) -> str:
    if out.get("output_type") == "stream":
        return _src({"source": out.get("text", "")})
    data = out.get("data", {})
    return _src({"source": data.get("text/plain", "")})


def resolve_carriage_returns(text: str) -> str:
    """What a terminal (and JupyterLab) shows of ``text``: on each line, a ``\\r`` starts it again."""
    lines = []
    for line in text.split("\n"):
        frames = line.split("\r")
        shown = ""
        for frame in frames:
            shown = frame + shown[len(frame):]
        lines.append(shown)
    return "\n".join(lines)


def hygiene_problems(path: str | Path) -> list[Problem]:
    """Every hygiene problem of the committed notebook at ``path`` (see the module docstring)."""
    path = Path(path)
    nb = load(path)
    problems = []
    code = [(i, c) for i, c in enumerate(_cells(nb)) if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for _, c in code]
    if counts != list(range(1, len(code) + 1)):
        bad = next(i for (i, _), got, want in zip(code, counts, range(1, len(code) + 1), strict=True) if got != want)
        problems.append(Problem(path.name, bad, f"execution counts are not 1..{len(code)} (this cell has "
                                f"{counts[[i for i, _ in code].index(bad)]}): run make execute"))
    for i, cell in enumerate(_cells(nb)):
        source = _src(cell)
        m = REMOTE_IMAGE.search(source)
        if m:
            problems.append(Problem(path.name, i, "a remote image: figures must be local files (offline first)",
                                    _excerpt(source, m.start(), m.end())))
        if cell["cell_type"] != "code":
            continue
        m = ANSWER_ASSERT.search(source)
        if m:
            problems.append(Problem(path.name, i, "an answer cell that asserts the learner is wrong "
                                    "(`assert not check_...`): exercises use lora_edu.exercises objects "
                                    "(README rule 3)",
                                    _excerpt(source, m.start(), m.end())))
        streams = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stdout"]
        if len(streams) > 1:
            problems.append(Problem(path.name, i, f"{len(streams)} separate stdout outputs: execute with coalesced "
                                    "streams (make execute)"))
        if any("\r" in _output_text(o) for o in streams):
            problems.append(Problem(path.name, i, "carriage returns in a stored output (progress-bar frames): "
                                    "execute with coalesced streams (make execute)"))
        texts = [resolve_carriage_returns("".join(_output_text(o) for o in streams))]
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(Problem(path.name, i, f"an error output: {out.get('ename')}: {out.get('evalue')}"))
            elif kind == "stream" and out.get("name") == "stderr":
                text = _output_text(out)
                problems.append(Problem(path.name, i, "a stderr output (silence harmless library messages at their "
                                        "source, lora_edu._utils.quiet_libraries)", text[:120].replace("\n", " ")))
            elif kind != "stream":
                texts.append(_output_text(out))
        for text in texts:
            frozen = [m for m in PROGRESS_BAR.finditer(text) if m.group(1) != "100" or m.group(2) != m.group(3)]
            for m in frozen:
                problems.append(Problem(path.name, i, "a frozen progress bar (stored unfinished): use "
                                        "lora_edu._utils.progress", _excerpt(text, m.start(), m.end())))
            for pattern, what in NOISE[1:] if frozen else NOISE:
                m = pattern.search(text)
                if m:
                    problems.append(Problem(path.name, i, f"library noise in an output: {what}",
                                            _excerpt(text, m.start(), m.end())))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Typesetting and hygiene checks of the course notebooks.")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook of the registry")
    parser.add_argument("--only", choices=("typesetting", "hygiene"), help="run one of the two checks")
    args = parser.parse_args(argv)
    if args.notebooks:
        paths = args.notebooks
    else:
        from lora_edu.tools.registry import notebook_paths

        paths = notebook_paths()
    total = 0
    for path in paths:
        found = []
        if args.only in (None, "typesetting"):
            found += typesetting_problems(path)
        if args.only in (None, "hygiene"):
            found += hygiene_problems(path)
        total += len(found)
        print(f"{path.name}: {len(found)} problem(s)")
        for p in found:
            print(f"  {p}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
