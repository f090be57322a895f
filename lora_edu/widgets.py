"""Compatibility: the explorers live in :mod:`lora_edu.explorers` (one file per notebook).

``from lora_edu.widgets import rank_explorer`` (and the other four) keeps working.
"""

from lora_edu.explorers import (
    autoencoder_explorer,
    lora_rank_explorer,
    outer_product_explorer,
    quantization_explorer,
    rank_explorer,
)

__all__ = ["autoencoder_explorer", "lora_rank_explorer", "outer_product_explorer", "quantization_explorer",
           "rank_explorer"]
