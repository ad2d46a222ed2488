"""Building the built-in tiny prior: its vocabulary, synthetic training data, model, and the attribute classifier.

Training-time code only: ``benchmarks/train_prior.py`` (training the prior), ``benchmarks/fidelity.py`` and
``benchmarks/train_attribute_classifier.py`` (the fidelity benchmark) use it; a paint run never imports it (it reads
what it needs, e.g. the prior's vocabulary, from the shipped prior folder through :mod:`csdtex.guidance`).

Modules:

- :mod:`csdtex.tinyprior.vocabulary`: colour / pattern / shape words, caption templates, :data:`VOCABULARY`.
- :mod:`csdtex.tinyprior.textures`: :class:`TextureSpec`, :class:`ProceduralTexture`, :func:`random_texture_spec`.
- :mod:`csdtex.tinyprior.shapes`: random primitive meshes (:func:`make_shape_mesh`) and the per-split mesh pools.
- :mod:`csdtex.tinyprior.synthetic`: captioned renders (:func:`generate_dataset`, :func:`render_objects`) and shards.
- :mod:`csdtex.tinyprior.model`: :class:`TinyPriorConfig`, build / save / load the prior's diffusers folder, sampling.
- :mod:`csdtex.tinyprior.training`: pieces of the training loop (schedule, EMA, caption table, held-out loss).
- :mod:`csdtex.tinyprior.report`: the training script's loss curve, image grids and model card.
- :mod:`csdtex.tinyprior.attributes`: the colour / pattern classifier of the fidelity benchmark.

This package re-exports the public names of the first five modules (``from csdtex import tinyprior``;
``tinyprior.generate_dataset(...)``, ``tinyprior.build_tiny_prior(...)``); import the last three from their modules.
``python -m csdtex.tinyprior write-vocabulary FOLDER`` stores a prior folder's vocabulary in its config (see
:mod:`csdtex.tinyprior.__main__`).
"""

from __future__ import annotations

from csdtex.tinyprior.model import (
    CONFIG_NAME,
    MAX_TEXT_LENGTH,
    SIZE_LIMIT_BYTES,
    TinyPriorComponents,
    TinyPriorConfig,
    build_tiny_prior,
    build_tokenizer,
    encode_captions,
    folder_weight_bytes,
    load_components,
    read_config,
    sample_images,
    save_prior_folder,
    tokenize,
    vocabulary_pieces,
    write_vocabulary,
)
from csdtex.tinyprior.shapes import PoolMesh, make_shape_mesh, place_randomly, pool_mesh
from csdtex.tinyprior.synthetic import (
    DATA_CAMERAS,
    HELD_OUT_COMBOS,
    SPLITS,
    generate_dataset,
    load_shard,
    render_objects,
    save_shard,
)
from csdtex.tinyprior.textures import ProceduralTexture, TextureSpec, random_texture_spec
from csdtex.tinyprior.vocabulary import (
    CAPTION_TEMPLATES,
    COLORS,
    GENERIC_NOUN,
    NUM_TEMPLATES,
    PATTERNS,
    SHAPES,
    STRIPE_DIRECTIONS,
    VIEW_SUFFIXES,
    VOCABULARY,
    caption_words,
    prior_vocabulary_entries,
    unknown_words,
    vocabulary_groups,
)

__all__ = [
    "CAPTION_TEMPLATES",
    "COLORS",
    "CONFIG_NAME",
    "DATA_CAMERAS",
    "GENERIC_NOUN",
    "HELD_OUT_COMBOS",
    "MAX_TEXT_LENGTH",
    "NUM_TEMPLATES",
    "PATTERNS",
    "SHAPES",
    "SIZE_LIMIT_BYTES",
    "SPLITS",
    "STRIPE_DIRECTIONS",
    "VIEW_SUFFIXES",
    "VOCABULARY",
    "PoolMesh",
    "ProceduralTexture",
    "TextureSpec",
    "TinyPriorComponents",
    "TinyPriorConfig",
    "build_tiny_prior",
    "build_tokenizer",
    "caption_words",
    "encode_captions",
    "folder_weight_bytes",
    "generate_dataset",
    "load_components",
    "load_shard",
    "make_shape_mesh",
    "place_randomly",
    "pool_mesh",
    "prior_vocabulary_entries",
    "random_texture_spec",
    "read_config",
    "render_objects",
    "sample_images",
    "save_prior_folder",
    "save_shard",
    "tokenize",
    "unknown_words",
    "vocabulary_groups",
    "vocabulary_pieces",
    "write_vocabulary",
]
