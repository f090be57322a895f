"""lora_edu: the helper package of the lora-edu course.

One module per idea, in notebook order:

* :mod:`lora_edu.rank`     - notebook 01, matrix rank and rank-r factorisations
* :mod:`lora_edu.svd`      - notebook 02, truncated SVD, Eckart-Young, energy, storage
* :mod:`lora_edu.widgets`  - the slider explorers used in the notebooks
* :mod:`lora_edu.data`     - data that ships with the installed packages (no download)
* :mod:`lora_edu.plotting` - one figure style for the whole course
* :mod:`lora_edu.exercises` - self-check functions for the end-of-notebook exercises
* :mod:`lora_edu.check_env` - ``python -m lora_edu.check_env`` prints OK/FAIL per requirement

Importing the package is cheap: torch, transformers and ipywidgets are imported only by the
modules that need them.
"""

from lora_edu.rank import numerical_rank, random_low_rank
from lora_edu.svd import (
    low_rank_approx,
    rank_for_energy,
    reconstruction_error,
    storage_cost,
    truncated_svd,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "low_rank_approx",
    "numerical_rank",
    "random_low_rank",
    "rank_for_energy",
    "reconstruction_error",
    "storage_cost",
    "truncated_svd",
]
