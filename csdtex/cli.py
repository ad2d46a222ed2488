"""The ``csdtex`` command line: a thin click layer over the Python API.

Every user error surfaces as one line ``error: ...`` on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import click

from csdtex import __version__
from csdtex.config import CAMERA_SAMPLINGS, GUIDANCE_METHODS
from csdtex.devices import DEVICE_CHOICES
from csdtex.errors import ConfigError, CsdtexError, user_message
from csdtex.mesh.types import UP_AXES
from csdtex.render import BACKENDS
from csdtex.render.views import SHADINGS
from csdtex.wording import counted

DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} or cuda:N"


class OutputPath(click.Path):
    """``click.Path`` for where outputs go, refusing an empty value: ``--out "$OUT"`` with ``OUT`` unset wrote into
    the working directory (an empty path is "." to pathlib). The error is one line (:class:`ConfigError`)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            option = param.opts[0] if param is not None and param.opts else "the output path"
            raise ConfigError(f"{option} is empty: name a folder or file, or leave the option out for the default")
        return super().convert(value, param, ctx)


class CsdtexGroup(click.Group):
    """A click group that turns csdtex's user errors (and a few environment failures) into one-line messages
    (:func:`csdtex.errors.user_message`, shared with ``csdtex batch``'s per-asset failures)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as interrupt:
            click.echo(f"error: {_interrupted(interrupt)}; no partial outputs were kept", err=True)
            ctx.exit(_interrupt_status(interrupt))
        except Exception as error:  # CsdtexError, out of memory (CUDA's recognised without importing torch)
            message = user_message(error)
            if message is None:
                raise
            click.echo(message[0], err=True)
            ctx.exit(message[1])


@contextlib.contextmanager
def _interrupt_names_checkpoint(out_dir: Path):
    """On Ctrl-C during paint / edit: when this run kept a checkpoint in ``out_dir``, say so and how to continue
    (exit 130, as for any interrupt). A checkpoint older than the command is an earlier run's, which ``--resume``
    continues only with that run's settings: it is named without the advice."""
    import time

    started = time.time()
    try:
        yield
    except KeyboardInterrupt as interrupt:
        from csdtex.pipeline.checkpoint import CHECKPOINT_TENSORS, checkpoint_step, has_checkpoint

        if not has_checkpoint(out_dir):
            raise
        step = checkpoint_step(out_dir)
        step = "?" if step is None else step
        with contextlib.suppress(OSError):
            if (out_dir / CHECKPOINT_TENSORS).stat().st_mtime < started - 1.0:
                click.echo(f"error: {_interrupted(interrupt)}; no partial outputs were kept ({out_dir} still holds the "
                           f"checkpoint at step {step} of an earlier run)", err=True)
                sys.exit(_interrupt_status(interrupt))
        click.echo(f"error: {_interrupted(interrupt)}; no partial outputs were kept, but the checkpoint at step {step} "
                   f"in {out_dir} was: run the same command with --resume to continue from it", err=True)
        sys.exit(_interrupt_status(interrupt))


def _signal_number(interrupt: KeyboardInterrupt) -> int | None:
    """The termination signal behind ``interrupt`` (:class:`csdtex.entry.Terminated`, or one the process received
    that a library re-raised as a plain KeyboardInterrupt), or None for Ctrl-C."""
    from csdtex.entry import received_termination

    number = getattr(interrupt, "signal_number", None)
    return number if number is not None else received_termination()


def _interrupted(interrupt: KeyboardInterrupt) -> str:
    """'interrupted' (Ctrl-C) or 'stopped by SIGTERM' / 'SIGHUP' (:class:`csdtex.entry.Terminated`)."""
    number = _signal_number(interrupt)
    if number is None:
        return "interrupted"
    import signal

    return f"stopped by {signal.Signals(number).name}"


def _interrupt_status(interrupt: KeyboardInterrupt) -> int:
    """The exit status of an interrupted command: 130 for Ctrl-C, 128 + the signal number for a termination."""
    number = _signal_number(interrupt)
    return 130 if number is None else 128 + int(number)


@click.group(cls=CsdtexGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="csdtex")
def main() -> None:
    """Paint, edit and check textures of existing 3D meshes from text, with Classifier Score Distillation."""


@main.command()
@click.argument("mesh_path", metavar="MESH", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
def info(mesh_path: Path, as_json: bool) -> None:
    """Describe MESH: size, UVs, charts, seams, bounding box and problems found."""
    from csdtex.mesh import analyze_mesh, load_mesh

    report = analyze_mesh(load_mesh(mesh_path))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.to_text())


@main.command()
@click.argument("mesh_path", metavar="MESH", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=OutputPath(path_type=Path), default=Path("preview.gif"), show_default=True,
              help="Output file: .gif (animation), .mp4 (needs imageio-ffmpeg) or .png (contact sheet).")
@click.option("--frames", type=click.IntRange(1, 720), default=24, show_default=True, help="Views around the orbit.")
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True, help="Frame size in pixels.")
@click.option("--elevation", type=click.FloatRange(-89.0, 89.0), default=15.0, show_default=True,
              help="Camera elevation in degrees.")
@click.option("--shading", type=click.Choice(SHADINGS), default="lit", show_default=True,
              help="lit: texture with soft diffuse light; albedo: texture only; normals: surface normals.")
@click.option("--fps", type=click.IntRange(1, 60), default=12, show_default=True, help="Frames per second.")
@click.option("--device", default="auto", show_default=True, help=f"Where to render: {DEVICE_HELP}.")
@click.option("--renderer", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="Rasterizer backend: torch (portable), torch-compiled or nvdiffrast (CUDA, optional).")
@click.option("--up", "up_axis", type=click.Choice(UP_AXES), default="+y", show_default=True,
              help="The mesh's up axis (+z for assets from Z-up tools).")
def render(mesh_path: Path, out_path: Path, frames: int, size: int, elevation: float, shading: str, fps: int,
           device: str, renderer: str, up_axis: str) -> None:
    """Render a turntable preview of a (textured) MESH."""
    from csdtex.devices import resolve_device
    from csdtex.fileio import short_path
    from csdtex.mesh import load_mesh
    from csdtex.pipeline.prepare import check_writable
    from csdtex.preview import PREVIEW_FORMATS, input_texture_model, turntable_frames, write_preview

    if out_path.suffix.lower() not in PREVIEW_FORMATS:
        raise CsdtexError(f"unsupported preview format {out_path.suffix or '(none)'!r} for --out: use .gif, .mp4 or .png")
    try:
        is_folder = out_path.is_dir()
    except OSError as error:  # a file name longer than the file system allows
        raise CsdtexError(f"cannot write --out {short_path(out_path.name)}: {error.strerror}; choose a shorter "
                          "name") from None
    if is_folder:
        raise CsdtexError(f"--out {out_path} is a folder: give a file name such as {out_path / 'preview.gif'}")
    check_writable(out_path.parent if str(out_path.parent) else Path("."), option="--out")
    torch_device = resolve_device(device)
    mesh = load_mesh(mesh_path)
    for warning in mesh.warnings:
        click.echo(f"warning: {warning}", err=True)
    model = input_texture_model(mesh).to(torch_device)
    # Vertex colours (glTF COLOR_0) multiply the texture, as in glTF viewers.
    images = turntable_frames(
        mesh.to_render(torch_device, vertex_colors=True, up_axis=up_axis), model, num_frames=frames, resolution=size,
        elevation_deg=elevation, shading=shading, backend=renderer,
    )
    write_preview(images, out_path, fps=fps)
    click.echo(f"wrote {out_path} ({counted(frames, 'frame')}, {size}x{size})")


def _run_options(*, paint: bool, single_run: bool = True):
    """The options ``csdtex paint``, ``edit`` and ``batch`` share; each maps to one :class:`csdtex.config.PaintConfig`
    field of the same name, applied over ``--config`` by :func:`_run_config`. ``paint=True`` adds the paint-only
    ones (a batch's rows default to them); ``single_run=True`` adds ``--out``, ``--resume`` and ``--quiet`` of a
    one-asset command (a batch has its own)."""
    options = [
        click.option("--model", default=None,
                     help="Prior: an alias from `csdtex models`, a local diffusers folder or a hub id [default: tiny, "
                          "the built-in prior: offline, CPU-friendly, flat colours and simple patterns only]."),
        click.option("--steps", type=int, default=None,
                     help="Optimization steps [default: 1000; 200 with the built-in prior]."),
        click.option("--views-per-step", type=int, default=None, help="Random views per step [default: 4]."),
        click.option("--guidance", "guidance_method", type=click.Choice(GUIDANCE_METHODS), default=None,
                     help="csd: Classifier Score Distillation; sds: the Score Distillation Sampling baseline "
                          "[default: csd]."),
        click.option("--seed", type=int, default=None, help="Random seed [default: 0]."),
        click.option("--camera-sampling", "camera_sampling", type=click.Choice(CAMERA_SAMPLINGS), default=None,
                     help="uniform: cameras uniform in the [cameras] ranges; coverage: half the views from cameras "
                          "chosen to see what uniform views rarely see (undersides, between legs; [coverage] table) "
                          "[default: uniform]."),
        click.option("--up", "up_axis", type=click.Choice(UP_AXES), default=None,
                     help="The mesh's up axis: +z for assets from Z-up tools (3ds Max, CAD, STL), so that top, "
                          "bottom and the views mean what they say; outputs keep the input's coordinates "
                          "[default: +y, glTF's and most tools' OBJ export]."),
        click.option("--device", default=None, help=f"{DEVICE_HELP} [default: auto]."),
        click.option("--renderer", type=click.Choice(BACKENDS), default=None,
                     help="Rasterizer backend [default: auto = nvdiffrast on CUDA when installed, else torch]."),
        click.option("--low-vram/--no-low-vram", "low_vram", default=None,
                     help="Use less GPU memory, more slowly, with the same result: smaller UNet batches, VAE-encoder "
                          "activations recomputed one view at a time, no CUDA graphs, text encoder kept off the GPU."),
        click.option("--compile-encoder/--no-compile-encoder", "compile_encoder", default=None,
                     help="Run the VAE encoder of an SD-style prior through torch.compile, for faster steps on CUDA: "
                          "the same result, the first step slower by the compilation (ignored with --low-vram)."),
        click.option("--overwrite/--no-overwrite", "overwrite", default=None,
                     help="Replace another asset's outputs in the output folder (removed once the new ones are complete)."),
        click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
                     help="TOML file of options (command-line options override it; --no-low-vram and the like turn "
                          "off a flag the file turns on)."),
    ]
    if single_run:
        options = [click.option("--out", "out_dir", type=OutputPath(path_type=Path), default=None,
                                help="Output folder (default: csdtex-out/<mesh name>" + ("" if paint else "_edit")
                                     + ")."),
                   *options,
                   click.option("--resume", is_flag=True, help="Continue from the checkpoint in the output folder."),
                   click.option("--quiet", is_flag=True, help="No progress bar.")]
    if paint:
        options += [
            click.option("--negative", "negative_prompt", default=None,
                         help="Negative prompt (default: the preset's; \"\" disables it)."),
            click.option("--texture-size", type=int, default=None,
                         help="Baked texture size in texels [default: 1024; 512 with the built-in prior]."),
            click.option("--unwrap/--no-unwrap", "unwrap", default=None,
                         help="Re-unwrap UVs with xatlas even if the mesh has UVs."),
        ]

    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


_NOT_CONFIG = ("out_dir", "resume", "config_file", "quiet")


def _run_config(config_type, options: dict, paint_task: bool = True):
    """A ``config_type`` built from ``--config`` (if given) with the command-line options (those not None) over it.
    A paint (``paint_task``) ignores the edit-only options of a file shared with ``csdtex edit``, with a note."""
    from csdtex.config import EDIT_ONLY_OPTIONS, EditConfig, apply_overrides, read_config_table

    config = config_type()
    if options["config_file"]:
        table = read_config_table(options["config_file"])
        edit_only = issubclass(config_type, EditConfig) or not paint_task
        ignored = [] if edit_only else [key for key in EDIT_ONLY_OPTIONS if key in table]
        if ignored:
            verb = "applies" if len(ignored) == 1 else "apply"
            _echo("note")(f"{' and '.join(ignored)} in {options['config_file']} {verb} to an edit only: ignored")
        table = {key: value for key, value in table.items() if key not in ignored}
        config = apply_overrides(config, table, source=str(options["config_file"]))
    values = {k: v for k, v in options.items() if k not in _NOT_CONFIG and v is not None}
    return apply_overrides(config, values, source="the command line")


def _without_paint_only_options(config, config_file: Path | None):
    """An edit's config without the paint-only ``texture_size``, ``unwrap`` and ``negative_prompt`` that a
    ``--config`` file shared with ``csdtex paint`` may set (an edit keeps the mesh's UVs and texture resolution, and
    its source description is its negative prompt); a note names what is ignored."""
    paint_only = (("texture_size", None), ("unwrap", False), ("negative_prompt", None))
    ignored = [name for name, off in paint_only if getattr(config, name) != off]
    if not ignored:
        return config
    _echo("note")(f"{', '.join(ignored)} in {config_file} do not apply to an edit (it keeps the mesh's UVs and "
                  "texture resolution, and --source is its negative prompt): ignored")
    return dataclasses.replace(config, texture_size=None, unwrap=False, negative_prompt=None)


def _echo(kind: str):
    return lambda message: click.echo(f"{kind}: {message}", err=True)


def _default_out(mesh_path: Path, out_dir: Path | None, edit: bool = False) -> Path:
    from csdtex.pipeline.prepare import default_output_folder

    return out_dir or default_output_folder(mesh_path, edit=edit)


@main.command()
@click.argument("mesh_path", metavar="MESH", type=click.Path(path_type=Path))
@click.argument("prompt")
@_run_options(paint=True)
def paint(mesh_path: Path, prompt: str, **options) -> None:
    """Paint a texture onto MESH from a text PROMPT with Classifier Score Distillation."""
    from csdtex.config import PaintConfig
    from csdtex.painting import paint as run_paint

    config = _run_config(PaintConfig, options)
    out_dir = _default_out(mesh_path, options["out_dir"])
    with _interrupt_names_checkpoint(out_dir):
        result = run_paint(mesh_path, prompt, config, out_dir=out_dir, resume=options["resume"],
                           show_progress=not options["quiet"], notify=_echo("note"), warn=_echo("warning"))
    click.echo(f"textured mesh: {result.files.obj} and {result.files.glb}")
    click.echo(f"preview:       {result.preview} ({result.preview_sheet.name})")
    click.echo(f"run record:    {result.run_json}")
    click.echo("timings:       " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))


@main.command()
@click.argument("mesh_path", metavar="MESH", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("--source", required=True,
              help="What the texture shows now, e.g. \"a red object\" (the edit moves away from it).")
@click.option("--mask", type=click.Path(path_type=Path), default=None,
              help="UV-space PNG limiting the edit: white = editable (greyscale or RGBA alpha; the texture's aspect).")
@click.option("--material", "materials", multiple=True,
              help="Edit only this material (OBJ usemtl / glTF material name); repeatable; combines with --mask.")
@click.option("--preserve", type=float, default=None,
              help="Weight of the anchor to the original texture (0 = none) [default: 0; see docs/design.md].")
@_run_options(paint=False)
def edit(mesh_path: Path, prompt: str, source: str, mask: Path | None, materials: tuple[str, ...],
         **options) -> None:
    """Edit the texture of a textured MESH to match PROMPT, inside its own UV layout."""
    from csdtex.config import EditConfig
    from csdtex.editing import edit as run_edit

    config = _without_paint_only_options(_run_config(EditConfig, options), options["config_file"])
    out_dir = _default_out(mesh_path, options["out_dir"], edit=True)
    with _interrupt_names_checkpoint(out_dir):
        result = run_edit(mesh_path, prompt, source, config, out_dir=out_dir, mask=mask, materials=materials,
                          resume=options["resume"], show_progress=not options["quiet"], notify=_echo("note"),
                          warn=_echo("warning"))
    metrics = result.metrics
    click.echo(f"edited mesh:   {result.files.obj} and {result.files.glb}")
    click.echo(f"before/after:  {result.before_after} ({result.before_after_sheet.name})")
    click.echo(f"start-up fit:  max {metrics['fit_error_max']:.0f}, rms {metrics['fit_error_rms']:.2f} (8-bit levels); "
               f"changed {100 * metrics['changed_inside']:.1f}% of the editable texels, "
               f"{metrics['changed_outside']} outside")
    click.echo(f"run record:    {result.run_json}")
    click.echo("timings:       " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))


@main.command()
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=OutputPath(path_type=Path), default=None,
              help="Output folder, one subfolder per asset (default: csdtex-out/<manifest name>).")
@click.option("--task", type=click.Choice(["paint", "edit"]), default="paint", show_default=True,
              help="What to do with each row (edit rows need a source column).")
@click.option("--prompt", default=None,
              help="For a folder of meshes: the prompt of every mesh that its prompts.csv does not list.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (Ray actors with --ray), each loading the prior once [default: one per GPU; on "
                   "the CPU one per core, at most 8].")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="More attempts for an asset whose worker died or that failed unexpectedly (user errors such as "
                   "a corrupt mesh are not retried).")
@click.option("--root", "roots", multiple=True, type=click.Path(path_type=Path),
              help="Another folder that manifest paths may point into (repeatable; the manifest's folder always is).")
@click.option("--ray", "use_ray", is_flag=True, help="Run on Ray, one actor per GPU (pip install csdtex[cluster]).")
@click.option("--ray-address", default=None, help="Address of the Ray cluster to join (implies --ray).")
@click.option("--dry-run", is_flag=True, help="List the assets and what would be done with each; run nothing.")
@_run_options(paint=True, single_run=False)
@click.option("--quiet", is_flag=True, help="No progress bars: one log line per finished asset.")
def batch(manifest_path: Path, out_dir: Path | None, task: str, prompt: str | None, workers: int | None,
          retries: int, roots: tuple[Path, ...], use_ray: bool, ray_address: str | None, dry_run: bool,
          config_file: Path | None, quiet: bool, **options) -> None:
    """Paint every asset of MANIFEST: a .csv / .jsonl file (columns mesh, prompt, out, and any paint option) or a
    folder of meshes (prompts from its prompts.csv or --prompt). Finished assets are skipped on a rerun."""
    from csdtex.batch.command import run_batch_command
    from csdtex.config import PaintConfig

    from csdtex.config import EditConfig

    config = _run_config(EditConfig if task == "edit" else PaintConfig, {**options, "config_file": config_file},
                         paint_task=task == "paint")
    code = run_batch_command(
        manifest_path, config, out_dir=out_dir, task=task, prompt=prompt, workers=workers, retries=retries,
        roots=roots, use_ray=use_ray or bool(ray_address), ray_address=ray_address, dry_run=dry_run, quiet=quiet,
        echo=click.echo,
    )
    click.get_current_context().exit(code)


@main.command()
def models() -> None:
    """List the prior aliases accepted by --model."""
    from csdtex.guidance import list_model_aliases

    rows = list_model_aliases()
    width = max(len(alias) for alias, _, _ in rows)
    for alias, repo_id, description in rows:
        click.echo(f"{alias.ljust(width)}  {repo_id}  {description}")
    click.echo("Any local diffusers folder (Stable Diffusion 1.x/2.x or DeepFloyd IF stage I layout) or hub id works too.")


@main.group()
def bench() -> None:
    """Benchmarks of texture quality."""


@bench.command("seams")
@click.argument("meshes", metavar="MESH...", nargs=-1, required=True)
@click.option("--model", default=None,
              help="Prior (an alias from `csdtex models`, a folder or a hub id) [default: tiny].")
@click.option("--prompt", default="a red and blue checkered object", show_default=True,
              help="The prompt of every paint.")
@click.option("--steps", type=click.IntRange(1, 100000), default=60, show_default=True, help="Optimization steps.")
@click.option("--texture-size", type=click.IntRange(16, 16384), default=256, show_default=True,
              help="Texture size in texels.")
@click.option("--methods", default="field,field-noerase,field-nofill,uv", show_default=True,
              help="Comma-separated: field, field-noerase, field-erase, field-nofill, field-dilate, uv, reference "
                   "(reference: --target procedural only).")
@click.option("--device", default="auto", show_default=True, help=f"{DEVICE_HELP}.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (the same for every method).")
@click.option("--target", type=click.Choice(["prompt", "procedural"]), default="prompt", show_default=True,
              help="prompt: score distillation of the prior for --prompt; procedural: photometric fit of a known "
                   "detailed 3D texture (checker and noise bands), no prior in the loss.")
@click.option("--feature-texels", type=click.FloatRange(0.5, 256), default=4.0, show_default=True,
              help="Procedural target: checker cell size in mean texels of the UV layout.")
@click.option("--render-resolution", type=click.IntRange(16, 2048), default=None,
              help="Render size in pixels [default: the prior's (prompt), half the texture size (procedural)].")
@click.option("--uv-lr", "uv_learning_rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Adam learning rate of the uv baseline (texel logits) [default: 0.1].")
@click.option("--out", "out_dir", type=OutputPath(path_type=Path), default=Path("csdtex-bench/seams"),
              show_default=True, help="Output folder (textures, seams.json, seams.md, seams.png).")
@click.option("--json", "json_path", type=OutputPath(path_type=Path), default=None,
              help="Where to write the JSON results [default: OUT/seams.json].")
def bench_seams(meshes: tuple[str, ...], model: str | None, prompt: str, steps: int, texture_size: int, methods: str,
                device: str, seed: int, target: str, feature_texels: float, render_resolution: int | None,
                uv_learning_rate: float | None, out_dir: Path, json_path: Path | None) -> None:
    """Texture each MESH (files, or proc:mismatch / proc:xatlas) with several methods and measure their UV seams.

    Reports seam RMS / interior RMS (the texture's own one-texel variation) at mip levels 0-3, bleed and the
    texel-density ratio across seams; see csdtex.metrics.seams for the definitions. Every method gets the same
    target, steps, views and seed: the prompt through the prior, or (--target procedural) a known detailed texture.
    """
    from csdtex.metrics.bench import BenchSettings, parse_methods, run_seam_bench

    settings = BenchSettings(model=model, prompt=prompt, steps=steps, texture_size=texture_size,
                             methods=parse_methods(methods), device=device, seed=seed, target=target,
                             feature_texels=feature_texels, render_resolution=render_resolution)
    if uv_learning_rate is not None:
        settings.uv_learning_rate = uv_learning_rate
    payload = run_seam_bench(list(meshes), settings, out_dir, json_path, log=_echo("done"), warn=_echo("warning"))
    click.echo(payload["table"])
    click.echo(f"results: {json_path or out_dir / 'seams.json'}, {out_dir / 'seams.md'}, {out_dir / 'seams.png'}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
