"""The notebook registry: one table of what each notebook uses and shows.

Everything that lists the notebooks derives the list from :data:`NOTEBOOKS`: the notebook tests
(which code a notebook builds from scratch, which notebooks show an explorer), the classroom app
(its sections) and the slides (which files to convert). Adding a notebook is adding one entry
here (README > Development > "Adding a notebook").

Names are strings (``"lora_edu.rank:numerical_rank"``), so reading the table imports nothing heavy;
:func:`resolve` imports what a name points at.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AppSection:
    """One section of the classroom app (``make app``): the name of the function in
    :mod:`lora_edu.tools.app` that builds its explorer from shipped data, a heading, a one-line lesson."""

    builder: str
    heading: str
    lesson: str


@dataclass(frozen=True)
class Notebook:
    """One notebook of the course.

    Attributes:
        file: the file name in ``notebooks/`` (``NN_name.ipynb``, numbered from 01 in order).
        title: a short title.
        modules: the teaching modules it uses, in the order it introduces them.
        explorers: names in :mod:`lora_edu.explorers` that it shows (its widget outputs).
        from_scratch: ``"module:qualname"`` of each definition the notebook writes out in full;
            a test checks the notebook's code is exactly the package's.
        app: its section of the classroom app, if it has one.
    """

    file: str
    title: str
    modules: tuple[str, ...]
    explorers: tuple[str, ...] = ()
    from_scratch: tuple[str, ...] = ()
    app: AppSection | None = None

    @property
    def number(self) -> int:
        return int(self.file[:2])

    @property
    def exercises(self) -> str:
        """Its exercises module: ``lora_edu.exercises.nbNN``."""
        return f"lora_edu.exercises.nb{self.number:02d}"

    @property
    def stem(self) -> str:
        return Path(self.file).stem


NOTEBOOKS: tuple[Notebook, ...] = (
    Notebook("01_matrix_rank.ipynb", "Matrix rank", ("lora_edu.rank",), explorers=("outer_product_explorer",),
             from_scratch=("lora_edu.rank:outer_product_sum", "lora_edu.rank:numerical_rank",
                           "lora_edu.rank:cr_factorisation"),
             app=AppSection("outer_product_section", "A matrix made of rank-1 outer products",
                            "Each term adds one rank; the noise slider shows why numerical rank needs a tolerance.")),
    Notebook("02_svd_truncation.ipynb", "SVD truncation", ("lora_edu.svd", "lora_edu.data"),
             explorers=("rank_explorer",),
             from_scratch=("lora_edu.svd:truncated_svd", "lora_edu.svd:low_rank_approx"),
             app=AppSection("rank_section", "Rank-k approximation of a photo",
                            "Drag k: the image sharpens fast at first, and the error curve shows why - "
                            "singular values fall quickly.")),
    Notebook("03_linear_autoencoders.ipynb", "Linear autoencoders", ("lora_edu.autoencoder", "lora_edu.data"),
             explorers=("autoencoder_explorer",),
             from_scratch=("lora_edu.autoencoder:LinearAutoencoder", "lora_edu.autoencoder:train_autoencoder",
                           "lora_edu.autoencoder:principal_angles", "lora_edu.autoencoder:subspace_similarity"),
             app=AppSection("autoencoder_section", "Linear autoencoder vs PCA", "At every code size r "
                            "the trained linear autoencoder reconstructs as well as PCA.")),
    Notebook("04_lora_from_scratch.ipynb", "LoRA from scratch", ("lora_edu.lora", "lora_edu.tasks"),
             explorers=("lora_rank_explorer",),
             from_scratch=("lora_edu.lora:LoRALinear", "lora_edu.lora:amplification_factor",
                           "lora_edu.lora:lora_from_update"),
             app=AppSection("lora_section", "What LoRA learns at each rank r",
                            "The learned update B A has at most r non-zero singular values (the readout "
                            "counts them); accuracy saturates at small r.")),
    Notebook("05_quantization.ipynb", "Quantization to QLoRA", ("lora_edu.quant", "lora_edu.gpt2", "lora_edu.corpus"),
             explorers=("quantization_explorer",),
             from_scratch=("lora_edu.quant:nf4_levels_from_quantiles", "lora_edu.quant:nearest_code"),
             app=AppSection("quantization_section", "Bits and block size vs quantization error",
                            "One outlier ruins a per-tensor scale; small blocks confine the damage.")),
    Notebook("06_gpt2_peft_finetune.ipynb", "GPT-2 fine-tune with PEFT",
             ("lora_edu.gpt2", "lora_edu.corpus", "lora_edu.finetune", "lora_edu.lora")),
    Notebook("07_lora_variants.ipynb", "LoRA variants: DoRA, PiSSA, rsLoRA, LoRA+, AdaLoRA",
             ("lora_edu.variants", "lora_edu.lora", "lora_edu.tasks", "lora_edu.quant", "lora_edu.gpt2"),
             explorers=("qpissa_explorer",),
             from_scratch=("lora_edu.variants:output_norms", "lora_edu.variants:DoRALinear",
                           "lora_edu.variants:magnitude_direction_change", "lora_edu.variants:check_initialisable",
                           "lora_edu.variants:pissa_init", "lora_edu.variants:olora_init",
                           "lora_edu.variants:loraplus_param_groups", "lora_edu.variants:concat_adapters"),
             app=AppSection("qpissa_section", "QLoRA vs QPiSSA: the 4-bit error of the frozen part",
                            "Moving the top r singular directions into the adapter shrinks the NF4 error by "
                            "about sqrt(1 - energy kept); a flat spectrum gains little.")),
)

#: The classroom app opens with this notebook's section (the course's headline picture), then the
#: others in notebook order.
APP_FIRST = 2


def by_file(file: str) -> Notebook:
    """The entry of ``file`` (a name such as ``"02_svd_truncation.ipynb"``)."""
    for nb in NOTEBOOKS:
        if nb.file == file:
            return nb
    raise KeyError(f"{file!r} is not in lora_edu.tools.registry.NOTEBOOKS: add its entry there")


def app_sections() -> list[tuple[Notebook, AppSection]]:
    """The app's sections in page order: :data:`APP_FIRST` first, then notebook order."""
    with_app = [nb for nb in NOTEBOOKS if nb.app is not None]
    ordered = sorted(with_app, key=lambda nb: (nb.number != APP_FIRST, nb.number))
    return [(nb, nb.app) for nb in ordered]


def notebook_paths(folder: str | Path = "notebooks") -> list[Path]:
    """The registered notebooks' paths inside ``folder`` (relative to the working directory)."""
    return [Path(folder) / nb.file for nb in NOTEBOOKS]


def resolve(name: str) -> object:
    """Import ``"package.module:qualname"`` and return the object."""
    module, _, qualname = name.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split(".") if qualname else ():
        obj = getattr(obj, part)
    return obj
