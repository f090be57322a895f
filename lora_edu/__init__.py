"""lora_edu: the helper package of the lora-edu course.

Teaching modules, one per idea, in notebook order (the notebook saves its code here):

* :mod:`lora_edu.rank`        - 01, matrix rank and rank-r factorisations
* :mod:`lora_edu.svd`         - 02, truncated SVD, Eckart-Young, energy, storage
* :mod:`lora_edu.autoencoder` - 03, linear autoencoders are PCA; a non-linear one is not
* :mod:`lora_edu.lora`, :mod:`lora_edu.tasks` - 04, the LoRA layer from scratch; the digits tasks
* :mod:`lora_edu.quant`       - 05, number formats, absmax/NF4 quantization, QLoRA's layer
* :mod:`lora_edu.gpt2`, :mod:`lora_edu.corpus`, :mod:`lora_edu.finetune` - 05-06, GPT-2 and its fine-tune

Shared by the notebooks:

* :mod:`lora_edu.explorers` - the slider explorers (one file per notebook; :mod:`lora_edu.widgets`
  is the old import path)
* :mod:`lora_edu.exercises` - the exercises with self-checks, ``nbXX`` per notebook
* :mod:`lora_edu.data` (data that ships with installed packages), :mod:`lora_edu.plotting` (one
  figure style), :mod:`lora_edu.hub` (is the Hugging Face hub reachable?)

Course tooling, not needed to follow a notebook, is in :mod:`lora_edu.tools`: the notebook
registry, the classroom app, slides, figures, benchmarks, the environment check
(``python -m lora_edu.check_env``) and the browser drivers of the tests.

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
