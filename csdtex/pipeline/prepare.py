"""Stage 1 of a run: everything that can fail on the user's input fails here, before any long work."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from csdtex.config import DEFAULT_MODEL, EditConfig, PaintConfig, resolve_for_prior, resolve_guidance
from csdtex.coverage import build_coverage_sampler
from csdtex.devices import resolve_device
from csdtex.errors import ConfigError, UnpaintedTextureError, one_line
from csdtex.export import safe_asset_name
from csdtex.fileio import short_path
from csdtex.mesh import Mesh, load_mesh, unwrap_uvs
from csdtex.mesh.analysis import (SMALL_UV_AREA, shared_texel_fractions, udim_hint, udim_tiles, uv_area_fractions,
                                  uv_span_text)
from csdtex.pipeline.outputs import check_inputs_kept, claim_output_folder, read_run_record
from csdtex.pipeline.run import PhaseTimer, PreparedRun
from csdtex.render import CandidateBudget, resolve_backend

Notify = Callable[[str], None]


def python_warning(message: str) -> None:
    """Default ``warn`` callback of the Python API: a :class:`UserWarning`."""
    import warnings

    warnings.warn(message, UserWarning, stacklevel=4)


def check_prompt(prompt: str, what: str = "prompt") -> str:
    """``prompt`` stripped; an empty or blank one is a :class:`ConfigError`."""
    if not prompt or not prompt.strip():
        raise ConfigError(f"the {what} is empty: describe the texture, e.g. \"a weathered bronze statue\"")
    return prompt.strip()


def check_writable(out_dir: Path, option: str = "--out") -> None:
    """Fail early (before any long work) when ``out_dir`` cannot be created or written; creates nothing.

    ``option`` names the command-line option in the message's remedy.
    """
    out_dir = Path(out_dir)
    existing = out_dir.absolute()
    try:
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
    except OSError as error:  # a name longer than the file system allows, say
        raise ConfigError(f"cannot write to output folder {short_path(out_dir)}: {error.strerror or one_line(error)}; "
                          f"choose another {option}") from None
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"cannot write to output folder {out_dir}: {existing} is a file; choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to output folder {out_dir}: {existing} is not writable; choose another "
                          f"{option}")


def check_call_types(mesh, config, config_type: type, **texts_and_paths) -> None:
    """One-line :class:`ConfigError` for a Python call of :func:`csdtex.paint` / :func:`csdtex.edit` with an argument
    of the wrong type (a dict for the config, a number for a prompt or a path), which would otherwise fail deep in a
    library. ``texts_and_paths``: name -> value; names ending in ``_path`` or ``out_dir`` / ``mask`` take a path or
    None, the others (prompts) a string."""
    if not isinstance(mesh, (Mesh, str, os.PathLike)):
        raise ConfigError(f"mesh must be a path or a csdtex.mesh.Mesh (got {type(mesh).__name__})")
    if config is not None and not isinstance(config, config_type):
        raise ConfigError(f"config must be a csdtex.{config_type.__name__} (got {type(config).__name__}); build one "
                          f"with csdtex.{config_type.__name__}(steps=..., ...)")
    for name, value in texts_and_paths.items():
        if name in ("out_dir", "mask"):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{name} must be a path or None (got {type(value).__name__})")
        elif not isinstance(value, str):
            raise ConfigError(f"{name} must be a string (got {type(value).__name__})")


DEFAULT_OUTPUT_ROOT = Path("csdtex-out")
"""Where runs write when no output folder is given: ``csdtex-out/<output name>`` in the working directory."""


def output_name(mesh: Mesh | str | Path) -> str:
    """The name a run gives its outputs (``<name>.obj``, ``<name>.glb``, ...): the mesh file's stem made safe
    (:func:`csdtex.export.safe_asset_name`); a :class:`Mesh` without a source file is ``"mesh"``."""
    if isinstance(mesh, Mesh):
        return safe_asset_name(mesh.source.stem if mesh.source else "mesh")
    return safe_asset_name(Path(mesh).stem)


def default_output_folder(mesh: Mesh | str | Path, edit: bool = False) -> Path:
    """The output folder of a run given none (CLI and Python API alike), relative to the working directory:
    ``csdtex-out/<output name>`` for a paint, ``csdtex-out/<output name>_edit`` for an edit, so two meshes painted
    one after the other keep their own folders and an edit does not replace the paint it starts from. A folder that
    holds the mesh itself (editing ``csdtex-out/crate/crate.obj``), or the outputs of a run of another mesh file of
    the same name (two ``scene.gltf``; the first edit of an edit chain), is skipped for the same name with ``_2``,
    ``_3``."""
    base = output_name(mesh) + ("_edit" if edit else "")
    source = mesh.source if isinstance(mesh, Mesh) else Path(mesh)
    own_folder = Path(os.path.realpath(source.parent)) if source is not None else None
    candidate, number = DEFAULT_OUTPUT_ROOT / base, 1
    while own_folder is not None and (Path(os.path.realpath(candidate)) == own_folder
                                      or _holds_outputs_of_another_mesh(candidate, source)):
        number += 1
        candidate = DEFAULT_OUTPUT_ROOT / f"{base}_{number}"
    return candidate


def _holds_outputs_of_another_mesh(folder: Path, source: Path) -> bool:
    """Whether ``folder``'s ``run.json`` records a run of another mesh file than ``source`` (another ``scene.gltf``,
    or an edit of another step of an edit chain): a default folder then is not this mesh's to replace."""
    mesh = (read_run_record(folder) or {}).get("mesh")
    recorded = mesh.get("source") if isinstance(mesh, dict) else None
    return isinstance(recorded, str) and os.path.realpath(recorded) != os.path.realpath(source)


def prepare_run(
    mesh: Mesh | str | Path,
    prompt: str,
    config: PaintConfig,
    out_dir: str | Path,
    *,
    prior=None,
    resume: bool = False,
    notify: Notify | None = None,
    warn: Notify | None = None,
) -> PreparedRun:
    """Load and check the inputs of a run and resolve its options.

    Args:
        mesh: a :class:`Mesh` or a path to a mesh file.
        prompt: the text prompt; must not be blank.
        config: options; None fields are filled from the prior's preset (:func:`csdtex.config.resolve_for_prior`).
        out_dir: output folder; must be creatable and writable (nothing is written here), and must not hold another
            asset's outputs unless ``config.overwrite`` (:func:`csdtex.pipeline.outputs.claim_output_folder`).
        prior: an already loaded prior (kept whole for later runs); default: load ``config.model`` (None =
            :data:`DEFAULT_MODEL`; with ``config.low_vram`` its text encoder waits in CPU memory and the UNet / VAE
            reach the device after the text encoding), whose text encoder is released once the prompts are encoded.
            With ``config.low_vram`` a given prior's text encoder moves to CPU memory for good (it comes to the
            device only to encode) and its captured CUDA graphs are dropped.
        resume: the run will continue from ``out_dir``'s checkpoint, which must exist.
        notify: receives one-line notices worth showing before the long part (UV unwrapping).
        warn: receives one-line warnings (mesh problems, texels shared by several surface regions, vertex colours
            the outputs will not carry, prompt words the prior does not know); default: :func:`python_warning`.
    Returns:
        :class:`PreparedRun` (with timings of ``load_mesh``, ``load_prior``, ``unwrap``, ``encode_text`` and, with
        ``config.camera_sampling == "coverage"``, ``coverage``: the candidate cameras' visibility measurement).
    Raises:
        csdtex.errors.CsdtexError: one-line user errors (bad options, prompt, mesh, model, device, output folder).
    """
    from csdtex.pipeline.checkpoint import checkpoint_step, has_checkpoint

    config.validate()
    prompt = check_prompt(prompt)
    out_dir = Path(out_dir)
    check_writable(out_dir)
    name = output_name(mesh)
    check_inputs_kept(out_dir, name, [None if isinstance(mesh, Mesh) else Path(mesh)])
    timer = PhaseTimer()
    device = resolve_device(config.device)
    backend = resolve_backend(config.renderer, device)
    if resume and not has_checkpoint(out_dir):
        raise ConfigError(f"--resume: no checkpoint in {out_dir}; run without --resume to start from scratch")
    kept_step = None if resume else checkpoint_step(out_dir)
    if prior is None and config.model is not None and not str(config.model).strip():
        raise ConfigError("--model is empty: pass an alias (csdtex models), a local diffusers folder or a hub id, or "
                          "leave the option out for the built-in prior")
    if prior is None and not config.model:
        config = dataclasses.replace(config, model=DEFAULT_MODEL)

    source_mesh = mesh if isinstance(mesh, Mesh) else timer.run("load_mesh", load_mesh, mesh,
                                                               discard_uvs=bool(config.unwrap))
    check_inputs_kept(out_dir, name, [source_mesh.source, *(m.texture_source for m in source_mesh.materials),
                                       *source_mesh.read_files])  # a glTF's images and an OBJ's maps too
    # After the input checks: a file the run reads is named as an input, not as a file csdtex did not write.
    replaced = claim_output_folder(out_dir, name, overwrite=config.overwrite)
    owns_prior = prior is None
    if owns_prior:
        from csdtex.guidance import load_prior

        prior = timer.run("load_prior", load_prior, config.model, device, low_vram=config.low_vram)
    elif config.low_vram:
        prior.offload_text_encoder()
        prior.release_cuda_graphs()
    config = resolve_for_prior(config, prior.preset, prior.render_resolution)
    guidance = resolve_guidance(config, prior.preset)

    notify = notify or (lambda message: None)
    warn = warn or python_warning
    for warning in source_mesh.warnings + source_mesh.output_notes:
        warn(warning)
    _warn_long_prompt(prior, prompt, guidance.view_dependent_prompt, warn)
    if guidance.method == "sds" and config.negative_prompt and not isinstance(config, EditConfig):
        warn("--negative has no effect with --guidance sds (SDS uses the prompt and the empty prompt only); it "
             "steers the CSD gradient")
    if prior.vocabulary:
        negative = guidance.negative_prompt if guidance.method == "csd" else None
        negative_words = ("in the source description (--source): " if isinstance(config, EditConfig) else
                          "in the negative prompt: ")
        _warn_joined_words(prior, [(prompt, ""), (negative, negative_words)], warn)
        _warn_unknown_words(prior.vocabulary, prompt, negative, negative_words, warn)
    if config.unwrap or not source_mesh.has_uvs:
        reason = "as asked (--unwrap)" if config.unwrap else "it has no UVs" if source_mesh.uv_faces is None else (
            "some faces have no UVs")
        notify(f"unwrapping UVs with xatlas: {reason}")
    textured_mesh = timer.run("unwrap", unwrap_uvs, source_mesh, config.texture_size, force=config.unwrap)
    notes = _input_notes(source_mesh, textured_mesh, isinstance(config, EditConfig), warn)
    if kept_step is not None:  # said before the long part: the first checkpoint of this run replaces it
        _note_kept_checkpoint(out_dir, kept_step, prompt, config, guidance, textured_mesh, notify)

    from csdtex.guidance import PromptEmbeddings

    embeddings = timer.run("encode_text", PromptEmbeddings, prior, prompt, guidance.negative_prompt,
                           view_dependent=guidance.view_dependent_prompt)
    if owns_prior:  # every prompt of the run is encoded; a prior passed in may serve later runs (a batch)
        prior.release_text_encoder()
    render_mesh = textured_mesh.to_render(device, up_axis=config.up_axis)
    _warn_small_in_views(render_mesh, backend, warn, notes)
    camera_sampler = None
    if config.camera_sampling == "coverage":
        camera_sampler = timer.run("coverage", build_coverage_sampler, render_mesh, config.cameras, config.coverage,
                                   config.seed, backend=backend)
    return PreparedRun(
        name=name, prompt=prompt, out_dir=out_dir, config=config, guidance=guidance, prior=prior, device=device,
        backend=backend, mesh=textured_mesh, render_mesh=render_mesh, embeddings=embeddings,
        timings=timer, replaced_outputs=replaced, notes=notes,
        candidate_budget=CandidateBudget() if device.type == "cuda" else None, camera_sampler=camera_sampler,
    )


def _input_notes(source: Mesh, textured: Mesh, is_edit: bool, warn: Notify) -> list[str]:
    """Warn (once each) about what the outputs cannot keep of the input; return the facts for ``run.json``."""
    notes: list[str] = []
    shared = [(name, fraction) for name, fraction in shared_texel_fractions(textured) if fraction > 0.01]
    if shared:
        parts = ", ".join(f"'{name}' {100.0 * fraction:.1f}%" for name, fraction in shared)
        remedy = ("; edits there change every region that shares them" if is_edit else
                  "; pass --unwrap to give every surface point its own texels")
        tiles = udim_tiles(textured)
        message = (f"several surface regions share the same texels (tiled or overlapping UVs): shared fraction of "
                   f"the painted texels {parts}; those regions get the same paint{remedy}"
                   + (f"; {udim_hint(tiles)}" if tiles else ""))
        warn(message)
        notes.append(message)
    if source.vertex_colors is not None:
        message = ("the mesh has vertex colours (glTF COLOR_0 / OBJ / PLY colours); the outputs do not carry them"
                   + ("" if is_edit else ": the painted texture replaces them"))
        warn(message)
        notes.append(message)
    kept = {m.name for m in textured.materials if m.maps}
    dropped = [m for m in source.materials if m.maps and m.name not in kept]
    if dropped:  # a full re-unwrap: the maps belonged to the old UVs
        parts = "; ".join(f"'{m.name}': {', '.join(slot.replace('_', '-') + ' map' for slot in m.maps)}"
                          for m in dropped)
        message = (f"the UVs were unwrapped anew, so the input's other maps, which belong to the old UVs, are not "
                   f"carried into the outputs ({parts}); paint without --unwrap to keep them")
        warn(message)
        notes.append(message)
    areas = [] if is_edit else uv_area_fractions(textured)
    if areas and not any(fraction > 0.0 for _, fraction in areas):  # said now, not after the whole optimization
        raise UnpaintedTextureError(
            f"nothing can be painted: every UV triangle has no area (the UVs of each face are one point or lie on a "
            f"line; {uv_span_text(textured).replace('UVs span', 'they span')}); pass --unwrap for a new UV layout")
    for name, fraction in areas:
        if fraction < SMALL_UV_AREA:
            detail = ("its UV triangles have no area, so it gets no paint" if fraction == 0.0 else
                      f"its UVs cover only {100.0 * fraction:.2g}% of the texture, so the paint holds almost no "
                      "detail there")
            message = f"material '{name}': {detail}; check that this is the UV set you meant, or pass --unwrap"
            warn(message)
            notes.append(message)
    for material in [] if is_edit else textured.materials:
        transform = material.texture_transform
        if transform is not None and not transform.is_identity:
            notes.append(f"material '{material.name}': {transform.description} applies to the input texture only; "
                         "the baked texture lives in raw UV space, so the outputs carry no texture transform")
    return notes


SMALL_IN_VIEWS = 0.01
"""Share of a whole-mesh view below which the mesh is too small in the prior's views to be painted well."""


def _warn_small_in_views(render_mesh, backend: str, warn: Notify, notes: list[str]) -> None:
    """Warn when the mesh fills under :data:`SMALL_IN_VIEWS` of views that frame it whole (8 views around it at
    64^2): parts far apart, or a long thin shape, are then a few pixels in every training view, and the prior cannot
    paint what it cannot see."""
    from csdtex.cameras import orbit_cameras
    from csdtex.render import rasterize

    cameras = orbit_cameras(8, elevation_deg=20.0, device=render_mesh.device)
    fragments = rasterize(cameras.project(render_mesh.positions), render_mesh.faces, 64, backend=backend)
    share = fragments.pixel_index.numel() / float(fragments.face_id.numel())
    if share < SMALL_IN_VIEWS:
        message = (f"the mesh fills only {100.0 * share:.2g}% of views that frame it whole (parts far apart, or a long "
                   "thin shape): every training view sees it as a few pixels, so the paint will be poor; paint the "
                   "parts as separate files (csdtex batch), or move them together in your 3D tool")
        warn(message)
        notes.append(message)


def _note_kept_checkpoint(out_dir: Path, step: int, prompt: str, config: PaintConfig, guidance, mesh: Mesh,
                          notify: Notify) -> None:
    """Say, before the long part, that this run replaces the checkpoint in ``out_dir`` at its first checkpoint, and
    advise ``--resume`` only when that checkpoint was made with this run's settings (the texture model and an edit's
    source textures are not known yet; the prompt, the options and the mesh are compared)."""
    from csdtex.pipeline.checkpoint import checkpoint_differences, checkpoint_identity, mesh_fingerprint

    identity = checkpoint_identity(prompt, config, guidance, "", {"mesh": mesh_fingerprint(mesh)})
    identity.pop("texture_model")
    differing = checkpoint_differences(out_dir, identity) or []
    if differing:
        notify(f"{out_dir} holds the checkpoint of another run at step {step} (not the same: "
               f"{', '.join(differing[:4])}); this run starts over and replaces it")
    else:
        notify(f"{out_dir} holds the checkpoint of an interrupted run at step {step}; this run starts over and "
               "replaces it: stop now (Ctrl-C) and run again with --resume to continue from it instead")


def _warn_long_prompt(prior, prompt: str, view_dependent: bool, warn: Notify) -> None:
    """Warn when the text encoder cannot read the whole prompt (it keeps the first ``max_text_length`` tokens): name
    the words it drops, and say when the view words appended per camera are the part that falls off."""
    from csdtex.guidance.prompts import VIEW_SUFFIXES

    limit = prior.max_text_length
    count = len(prior.token_ids(prompt))
    if count > limit:
        words = prompt.split()
        kept = 0  # the longest run of leading words that fits
        while kept < len(words) and len(prior.token_ids(" ".join(words[: kept + 1]))) <= limit:
            kept += 1
        dropped = " ".join(words[kept:])
        shown = dropped if len(dropped) <= 60 else dropped[:57] + "..."
        warn(f"the prompt is {count} tokens long but the text encoder reads {limit}: '{shown}' is ignored"
             + (", and so are the view words (', front view', ...)" if view_dependent else "")
             + "; shorten the prompt")
    elif view_dependent and len({prior.token_ids(prompt + suffix, truncate=True) for suffix in VIEW_SUFFIXES}) < len(
            VIEW_SUFFIXES):
        warn(f"the view words appended per camera (', front view', ...) fall past the text encoder's {limit} tokens "
             "with this prompt, so some views are not told apart; shorten the prompt")


def _warn_unknown_words(vocabulary, prompt: str, negative_prompt: str | None, negative_words: str,
                        warn: Notify) -> None:
    from csdtex.guidance.loading import builtin_prior_vocabularies
    from csdtex.guidance.vocabulary import unknown_words_message

    alternatives = None
    for text, where in ((prompt, ""), (negative_prompt, negative_words)):
        if text and alternatives is None and unknown_words_message(text, vocabulary) is not None:
            alternatives = builtin_prior_vocabularies()
        message = unknown_words_message(text, vocabulary, alternatives) if text else None
        if message:
            warn(where + message)


def _warn_joined_words(prior, texts: list[tuple[str | None, str]], warn: Notify) -> None:
    """Warn about known words a closed-vocabulary prior loses because punctuation joins them to others: its
    tokenizer reads ``red-and-blue`` or ``red/blue`` as one unknown token (the word check splits on punctuation, so it
    would not notice). ``texts``: (text or None, where it came from, for the message)."""
    from csdtex.guidance.vocabulary import is_punctuation, prompt_words

    for text, where in texts:
        for chunk in (text or "").split():
            known = [w for w in prompt_words(chunk) if not is_punctuation(w) and w in prior.vocabulary]
            if not known or not any(is_punctuation(c) for c in chunk):
                continue
            read = {token.lstrip("\u2581").lower()
                    for token in prior.tokenizer.convert_ids_to_tokens(list(prior.token_ids(chunk)))}
            lost = [w for w in known if w not in read]
            if lost:
                apart = " ".join(w for w in prompt_words(chunk) if not is_punctuation(w))
                warn(f"{where}the prior reads '{chunk}' with {', '.join(repr(w) for w in lost)} lost in an unknown "
                     f"token (punctuation joins the words): write them apart with spaces ('{apart}')")
