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
from csdtex.errors import CsdtexError
from csdtex.render import BACKENDS
from csdtex.render.views import SHADINGS

DEVICE_HELP = f"{', '.join(DEVICE_CHOICES)} or cuda:N"


class CsdtexGroup(click.Group):
    """A click group that turns csdtex's user errors (and a few environment failures) into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CsdtexError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted; no partial outputs were kept", err=True)
            ctx.exit(130)
        except MemoryError:
            click.echo("error: out of memory: lower --texture-size, --resolution or the number of views", err=True)
            ctx.exit(3)
        except Exception as error:  # CUDA OOM and friends, recognised without importing torch eagerly
            if type(error).__name__ == "OutOfMemoryError":
                click.echo(
                    "error: the GPU ran out of memory: lower --views-per-step, --resolution or --texture-size, "
                    "or use --device cpu",
                    err=True,
                )
                ctx.exit(3)
            raise


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
    from csdtex.mesh import load_mesh
    from csdtex.pipeline.prepare import check_writable
    from csdtex.preview import PREVIEW_FORMATS, input_texture_model, turntable_frames, write_preview

    if out_path.suffix.lower() not in PREVIEW_FORMATS:
        raise CsdtexError(f"unsupported preview format {out_path.suffix or '(none)'!r} for --out: use .gif, .mp4 or .png")
    if out_path.is_dir():
        raise CsdtexError(f"--out {out_path} is a folder: give a file name such as {out_path / 'preview.gif'}")
    check_writable(out_path.parent if str(out_path.parent) else Path("."), option="--out")
    torch_device = resolve_device(device)
    mesh = load_mesh(mesh_path)
    for warning in mesh.warnings:
        click.echo(f"warning: {warning}", err=True)
    model = input_texture_model(mesh).to(torch_device)
    # Vertex colours (glTF COLOR_0) multiply the texture, as in glTF viewers.
    images = turntable_frames(
        mesh.to_render(torch_device, vertex_colors=True), model, num_frames=frames, resolution=size,
        elevation_deg=elevation, shading=shading, backend=renderer,
    )
    write_preview(images, out_path, fps=fps)
    click.echo(f"wrote {out_path} ({frames} frames, {size}x{size})")


@main.command()
@click.argument("mesh_path", metavar="MESH", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: csdtex-out/<mesh name>).")
@click.option("--model", default=None,
              help="Prior: an alias from `csdtex models`, a local diffusers folder or a hub id [default: tiny, the "
                   "built-in prior: offline, CPU-friendly, flat colours and simple patterns only].")
@click.option("--negative", default=None, help="Negative prompt (default: the preset's; \"\" disables it).")
@click.option("--steps", type=int, default=None, help="Optimization steps [default: 1000; 200 with the built-in prior].")
@click.option("--views-per-step", type=int, default=None, help="Random views per step [default: 4].")
@click.option("--texture-size", type=int, default=None, help="Baked texture size in texels [default: 1024; 512 with the built-in prior].")
@click.option("--guidance", type=click.Choice(GUIDANCE_METHODS), default=None,
              help="csd: Classifier Score Distillation; sds: the Score Distillation Sampling baseline [default: csd].")
@click.option("--seed", type=int, default=None, help="Random seed [default: 0].")
@click.option("--device", default=None, help=f"{DEVICE_HELP} [default: auto].")
@click.option("--renderer", type=click.Choice(BACKENDS), default=None,
              help="Rasterizer backend [default: auto = nvdiffrast on CUDA when installed, else torch].")
@click.option("--unwrap", is_flag=True, default=None, help="Re-unwrap UVs with xatlas even if the mesh has UVs.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in the output folder.")
@click.option("--overwrite", is_flag=True, default=None,
              help="Replace another asset's outputs in the output folder (removed once the new ones are complete).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file of options (command-line options override it).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def paint(mesh_path: Path, prompt: str, out_dir: Path | None, model: str | None, negative: str | None,
          steps: int | None, views_per_step: int | None, texture_size: int | None, guidance: str | None,
          seed: int | None, device: str | None, renderer: str | None, unwrap: bool | None, resume: bool,
          overwrite: bool | None, config_file: Path | None, quiet: bool) -> None:
    """Paint a texture onto MESH from a text PROMPT with Classifier Score Distillation."""
    from csdtex.config import PaintConfig, apply_overrides, load_config_file
    from csdtex.export import safe_asset_name
    from csdtex.painting import paint as run_paint

    config = load_config_file(config_file) if config_file else PaintConfig()
    options = {"model": model, "negative_prompt": negative, "steps": steps, "views_per_step": views_per_step,
               "texture_size": texture_size, "guidance_method": guidance, "seed": seed, "device": device,
               "renderer": renderer, "unwrap": unwrap, "overwrite": overwrite}
    config = apply_overrides(config, {k: v for k, v in options.items() if v is not None}, source="the command line")
    out_dir = out_dir or Path("csdtex-out") / safe_asset_name(mesh_path.stem)
    result = run_paint(mesh_path, prompt, config, out_dir=out_dir, resume=resume, show_progress=not quiet,
                       notify=lambda message: click.echo(f"note: {message}", err=True),
                       warn=lambda message: click.echo(f"warning: {message}", err=True))
    click.echo(f"textured mesh: {result.files.obj} and {result.files.glb}")
    click.echo(f"preview:       {result.preview} ({result.preview_sheet.name})")
    click.echo(f"run record:    {result.run_json}")
    click.echo("timings:       " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))


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
