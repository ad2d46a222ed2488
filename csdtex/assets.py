"""Where csdtex's shipped assets are: the built-in prior, the sample meshes and the attribute classifier.

A source checkout (or an editable install) keeps them in ``<checkout>/assets``; an installed wheel puts them into
``<prefix>/share/csdtex`` (``setup.cfg``'s ``[options.data_files]``). Every lookup searches the same folders in the
same order (:func:`asset_roots`), once per call; nothing is searched at import time.

Layout below an asset root:

- ``priors/tiny/``: the built-in prior, a diffusers folder (:func:`builtin_prior_folder`); ``priors/tiny-materials/``
  the second built-in prior (material words, ``--model tiny-materials``), same layout;
- ``meshes/*.obj``: the sample meshes;
- ``classifier/``: the attribute classifier of the fidelity benchmark (``attributes.safetensors`` +
  ``attributes.json``, see :func:`csdtex.tinyprior.attributes.default_weights_path`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from csdtex.errors import ModelError

BUILTIN_PRIOR_PARTS: tuple[str, ...] = ("priors", "tiny")
"""Where the built-in prior lives below an asset root: ``assets/priors/tiny`` in a source checkout,
``<prefix>/share/csdtex/priors/tiny`` in an installed wheel."""

CLASSIFIER_PARTS: tuple[str, ...] = ("classifier",)
"""Where the attribute classifier lives below an asset root: ``assets/classifier`` in a source checkout,
``<prefix>/share/csdtex/classifier`` in an installed wheel."""

CLASSIFIER_V2_PARTS: tuple[str, ...] = ("classifier_v2",)
"""Where the label-set-2 attribute classifier (data version 2: ten patterns, materials included) lives below an asset
root: ``assets/classifier_v2`` in a source checkout, ``<prefix>/share/csdtex/classifier_v2`` in a wheel."""


def asset_roots() -> list[Path]:
    """Folders that may hold csdtex's shipped assets, in search order, without duplicates.

    1. ``<checkout>/assets`` next to the ``csdtex`` package (a source checkout or an editable install);
    2. ``share/csdtex`` of the installed distribution, found through its RECORD (works for any install scheme:
       virtual environments, ``--user``, ``--prefix``, ``--target``);
    3. ``share/csdtex`` beside the ``csdtex`` package (``pip install --target``), then ``<sys.prefix>/share/csdtex``.

    The folders are not checked for existence.
    """
    package_parent = Path(__file__).resolve().parents[1]
    roots = [package_parent / "assets"]
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            files = distribution("csdtex").files or []
        except PackageNotFoundError:
            files = []
        for entry in files:
            if "share/csdtex/" not in Path(str(entry)).as_posix():
                continue
            located = Path(str(entry.locate())).resolve()
            root = next((p for p in located.parents if p.name == "csdtex" and p.parent.name == "share"), None)
            if root is not None:
                roots.append(root)
                break
    except Exception:  # noqa: BLE001 - a broken installation record only removes one search location
        pass
    roots += [package_parent / "share" / "csdtex", Path(sys.prefix) / "share" / "csdtex"]
    return list(dict.fromkeys(roots))


def asset_candidates(*parts: str) -> list[Path]:
    """``root / parts`` for every root of :func:`asset_roots`, in search order (existing or not)."""
    return [root.joinpath(*parts) for root in asset_roots()]


def find_asset_file(*parts: str) -> Path:
    """The first existing file ``root / parts`` in search order (:func:`asset_roots`).

    Returns:
        That file; when no root has it, the candidate of the first root (``<checkout>/assets/...``), so that the
        caller's "file missing" message names where a source checkout expects it.
    """
    candidates = asset_candidates(*parts)
    return next((path for path in candidates if path.is_file()), candidates[0])


def builtin_prior_folder(name: str = BUILTIN_PRIOR_PARTS[-1]) -> Path:
    """The folder of a built-in prior: the first ``<root>/priors/<name>`` holding a ``model_index.json``.

    Args:
        name: the prior's folder name below ``priors/``: ``"tiny"`` (the default prior) or ``"tiny-materials"``
            (the alias of :data:`csdtex.guidance.aliases.MODEL_ALIASES` is the folder name).

    Raises:
        ModelError: it is in none of the places of :func:`asset_roots` (an incomplete installation).
    """
    candidates = asset_candidates(BUILTIN_PRIOR_PARTS[0], name)
    for folder in candidates:
        if (folder / "model_index.json").is_file():
            return folder
    what = "the built-in prior" if name == BUILTIN_PRIOR_PARTS[-1] else f"the built-in prior {name!r}"
    raise ModelError(
        f"{what} is missing from this installation (looked in {', '.join(map(str, candidates))}): "
        "reinstall csdtex, or pass --model with a local diffusers folder"
    )
