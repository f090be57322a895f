"""One figure style for the whole course, and saving into ``figures/``.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies)
and every series also gets its own line style and marker, so plots stay readable in grayscale.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from cycler import cycler

#: Okabe & Ito (2008) colour-blind-safe palette, black first.
OKABE_ITO = (
    "#000000",
    "#E69F00",
    "#0072B2",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
)
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), "-", "--")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: Where ``make figures`` writes: the repository's ``figures/`` folder.
FIGURES_DIR = Path(__file__).resolve().parent.parent / "figures"

COURSE_RC = {
    "axes.prop_cycle": cycler(color=OKABE_ITO) + cycler(linestyle=LINESTYLES) + cycler(marker=MARKERS),
    "lines.markersize": 4,
    "lines.linewidth": 1.6,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "image.cmap": "gray",
    # Fixed ids and no date keep regenerated SVGs byte-identical.
    "svg.hashsalt": "lora-edu",
}


def use_course_style() -> None:
    """Apply the course style to matplotlib globally (idempotent)."""
    mpl.rcParams.update(COURSE_RC)


def save_figure(fig, name: str, formats: tuple[str, ...] = ("png",), folder: Path | None = None) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>`` for each format; returns the paths written."""
    if not name or "/" in name or "\\" in name or "." in name:
        raise ValueError(f"name must be a bare file stem such as 'rank_grid', got {name!r}")
    folder = FIGURES_DIR if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt not in ("png", "svg"):
            raise ValueError(f"formats may contain 'png' and 'svg', got {fmt!r}")
        path = folder / f"{name}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        with mpl.rc_context({"svg.hashsalt": "lora-edu"}):  # stable ids: same figure, same bytes
            fig.savefig(path, format=fmt, metadata=metadata)
        paths.append(path)
    return paths
