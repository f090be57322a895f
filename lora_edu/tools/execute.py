"""``make execute``: run each notebook top to bottom in a fresh kernel and store it as a reader sees it.

``jupyter nbconvert --execute`` stores every chunk a cell prints as its own output, progress-bar
frames (``\\r``) included, and its command line ignores ``--ExecutePreprocessor.coalesce_streams``
(not a configurable trait there). This tool calls nbclient directly with ``coalesce_streams=True``:
each cell keeps one stdout stream with carriage returns resolved, which is what
``tests/test_notebook_hygiene.py`` requires. After executing, it re-applies the slide rule
(``python -m lora_edu.tools.slides --annotate``) so the cell metadata follows the new outputs.

    python -m lora_edu.tools.execute [NOTEBOOK ...]      # default: every notebook of the registry
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TIMEOUT = 1800   # seconds per cell (notebook 06's fine-tunes take minutes on 2 cores)


def execute(path: str | Path, timeout: int = TIMEOUT, kernel_name: str = "python3") -> None:
    """Execute the notebook at ``path`` in place, in a fresh kernel started in its folder."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, coalesce_streams=True,
                   resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
    nbformat.write(nb, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the course notebooks in place (fresh kernel, "
                                     "coalesced streams) and re-apply the slide rule to their metadata.")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook of the registry")
    parser.add_argument("--timeout", type=int, default=TIMEOUT, help=f"seconds per cell (default {TIMEOUT})")
    parser.add_argument("--no-annotate", action="store_true", help="leave the slide metadata alone")
    args = parser.parse_args(argv)
    if args.notebooks:
        paths = args.notebooks
    else:
        from lora_edu.tools.registry import notebook_paths

        paths = notebook_paths()
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        parser.error(f"no such notebook(s): {', '.join(missing)}")
    for path in paths:
        start = time.perf_counter()
        execute(path, args.timeout)
        print(f"executed {path} ({time.perf_counter() - start:.0f} s)", flush=True)
    if not args.no_annotate:
        from lora_edu.tools.slides import annotate

        for path in paths:
            print(f"{Path(path).name}: slide metadata {'updated' if annotate(path) else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
