"""The course's slider explorers: one file per notebook, on one small framework.

* :mod:`~lora_edu.explorers.framework` - :class:`~lora_edu.explorers.framework.Explorer` and its
  parts (controls, readout, live picture, static small multiples, ipywidgets-or-fallback);
* ``nbXX_*.py`` - each notebook's explorer: only its drawing and its update.

In a notebook, the last line of a cell shows an explorer::

    from lora_edu.explorers import rank_explorer
    rank_explorer(image, k=20)
"""

from lora_edu.explorers.framework import Control, Explorer, Frame
from lora_edu.explorers.nb01_outer_products import outer_product_explorer
from lora_edu.explorers.nb02_rank import rank_explorer
from lora_edu.explorers.nb03_autoencoder import autoencoder_explorer
from lora_edu.explorers.nb04_lora_rank import lora_rank_explorer
from lora_edu.explorers.nb05_quantization import quantization_explorer

__all__ = [
    "Control",
    "Explorer",
    "Frame",
    "autoencoder_explorer",
    "lora_rank_explorer",
    "outer_product_explorer",
    "quantization_explorer",
    "rank_explorer",
]
