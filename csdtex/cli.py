"""The ``csdtex`` command line: a thin click layer over the Python API.

Every user error surfaces as one line ``error: ...`` on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from csdtex import __version__
from csdtex.config import GUIDANCE_METHODS
from csdtex.devices import DEVICE_CHOICES
from csdtex.errors import CsdtexError, user_message
from csdtex.render import BACKENDS
from csdtex.render.views import SHADINGS

DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} or cuda:N"


class CsdtexGroup(click.Group):
    """A click group that turns csdtex's user errors (and a few environment failures) into one-line messages
    (:func:`csdtex.errors.user_message`, shared with ``csdtex batch``'s per-asset failures)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("error: interrupted; no partial outputs were kept", err=True)
            ctx.exit(130)
        except Exception as error:  # CsdtexError, out of memory (CUDA's recognised without importing torch)
            message = user_message(error)
            if message is None:
                raise
            click.echo(message[0], err=True)
            ctx.exit(message[1])


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
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=Path("preview.gif"), show_default=True,
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
def render(mesh_path: Path, out_path: Path, frames: int, size: int, elevation: float, shading: str, fps: int,
           device: str, renderer: str) -> None:
    """Render a turntable preview of a (textured) MESH."""
    from csdtex.devices import resolve_device
    from csdtex.field import UVTexture
    from csdtex.mesh import load_mesh
    from csdtex.preview import PREVIEW_FORMATS, material_texture_images, turntable_frames, write_preview

    if out_path.suffix.lower() not in PREVIEW_FORMATS:
        raise CsdtexError(f"unsupported preview format {out_path.suffix or '(none)'!r} for --out: use .gif, .mp4 or .png")
    torch_device = resolve_device(device)
    mesh = load_mesh(mesh_path)
    for warning in mesh.warnings:
        click.echo(f"warning: {warning}", err=True)
    model = UVTexture.from_images(material_texture_images(mesh)).to(torch_device)
    images = turntable_frames(
        mesh.to_render(torch_device), model, num_frames=frames, resolution=size, elevation_deg=elevation,
        shading=shading, backend=renderer,
    )
    write_preview(images, out_path, fps=fps)
    click.echo(f"wrote {out_path} ({frames} frames, {size}x{size})")


# PaintConfig options on the command line, by field name (each option's parameter is named after its field).
# paint and batch share them; values are checked by csdtex.config.apply_overrides.
_CONFIG_OPTIONS = {
    "model": click.option(
        "--model", "model", default=None,
        help="Prior: an alias from `csdtex models`, a local diffusers folder or a hub id [default: tiny, the built-in "
             "prior: offline, CPU-friendly, flat colours and simple patterns only]."),
    "negative_prompt": click.option(
        "--negative", "negative_prompt", default=None, help="Negative prompt (default: the preset's; \"\" disables it)."),
    "steps": click.option(
        "--steps", "steps", type=int, default=None, help="Optimization steps [default: 1000; 200 with the built-in prior]."),
    "views_per_step": click.option(
        "--views-per-step", "views_per_step", type=int, default=None, help="Random views per step [default: 4]."),
    "texture_size": click.option(
        "--texture-size", "texture_size", type=int, default=None,
        help="Baked texture size in texels [default: 1024; 512 with the built-in prior]."),
    "guidance_method": click.option(
        "--guidance", "guidance_method", type=click.Choice(GUIDANCE_METHODS), default=None,
        help="csd: Classifier Score Distillation; sds: the Score Distillation Sampling baseline [default: csd]."),
    "seed": click.option("--seed", "seed", type=int, default=None, help="Random seed [default: 0]."),
    "device": click.option("--device", "device", default=None, help=f"{DEVICE_HELP} [default: auto]."),
    "renderer": click.option(
        "--renderer", "renderer", type=click.Choice(BACKENDS), default=None,
        help="Rasterizer backend [default: auto = nvdiffrast on CUDA when installed, else torch]."),
    "unwrap": click.option(
        "--unwrap", "unwrap", is_flag=True, default=None, help="Re-unwrap UVs with xatlas even if the mesh has UVs."),
}


def config_options(function):
    """Add the PaintConfig options (``--model``, ``--steps``, ...) and ``--config FILE.toml`` to a command."""
    function = click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
                            help="TOML file of options (command-line options override it).")(function)
    for option in reversed(_CONFIG_OPTIONS.values()):
        function = option(function)
    return function


def config_from_options(config_file: Path | None, values: dict):
    """The :class:`~csdtex.config.PaintConfig` of ``--config`` (or the defaults) with the command-line options in
    ``values`` (PaintConfig field -> value; None = not given) applied by :func:`csdtex.config.apply_overrides`."""
    from csdtex.config import PaintConfig, apply_overrides, load_config_file

    config = load_config_file(config_file) if config_file else PaintConfig()
    given = {name: value for name, value in values.items() if name in _CONFIG_OPTIONS and value is not None}
    return apply_overrides(config, given, source="the command line")


@main.command()
@click.argument("mesh_path", metavar="MESH", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: csdtex-out/<mesh name>).")
@config_options
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in the output folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def paint(mesh_path: Path, prompt: str, out_dir: Path | None, resume: bool, config_file: Path | None, quiet: bool,
          **options) -> None:
    """Paint a texture onto MESH from a text PROMPT with Classifier Score Distillation."""
    from csdtex.export import safe_asset_name
    from csdtex.painting import paint as run_paint

    config = config_from_options(config_file, options)
    out_dir = out_dir or Path("csdtex-out") / safe_asset_name(mesh_path.stem)
    result = run_paint(mesh_path, prompt, config, out_dir=out_dir, resume=resume, show_progress=not quiet,
                       notify=lambda message: click.echo(f"note: {message}", err=True),
                       warn=lambda message: click.echo(f"warning: {message}", err=True))
    click.echo(f"textured mesh: {result.files.obj} and {result.files.glb}")
    click.echo(f"preview:       {result.preview} ({result.preview_sheet.name})")
    click.echo(f"run record:    {result.run_json}")
    click.echo("timings:       " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))


@main.command()
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
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
@config_options
@click.option("--quiet", is_flag=True, help="No progress bars: one log line per finished asset.")
def batch(manifest_path: Path, out_dir: Path | None, task: str, prompt: str | None, workers: int | None,
          retries: int, roots: tuple[Path, ...], use_ray: bool, ray_address: str | None, dry_run: bool,
          config_file: Path | None, quiet: bool, **options) -> None:
    """Paint every asset of MANIFEST: a .csv / .jsonl file (columns mesh, prompt, out, and any paint option) or a
    folder of meshes (prompts from its prompts.csv or --prompt). Finished assets are skipped on a rerun."""
    from csdtex.batch.command import run_batch_command

    config = config_from_options(config_file, options)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
