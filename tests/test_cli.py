"""`csdtex info` and `csdtex render` through click's runner: outputs, previews of textured meshes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from csdtex import __version__
from csdtex.cli import main
from csdtex.entry import ALLOCATOR_SETTINGS, ALLOCATOR_VARIABLES, prefer_allocator_settings
from csdtex.export import export_all
from csdtex.mesh import load_mesh

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "meshes"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_info_prints_a_report_and_json():
    text = invoke("info", str(ASSETS / "vase.obj"))
    assert text.exit_code == 0
    assert "faces:" in text.output and "4560" in text.output and "UV charts:" in text.output
    report = json.loads(invoke("info", str(ASSETS / "crate.obj"), "--json").output)
    assert report["num_faces"] == 108 and report["has_uvs"] and report["num_charts"] == 6


def test_render_shows_the_mesh_texture(tmp_path):
    # A crate whose texture is pure red: the lit turntable must be reddish wherever the mesh is.
    mesh = load_mesh(ASSETS / "crate.obj")
    red = np.zeros((64, 64, 3), dtype=np.uint8)
    red[..., 0] = 230
    files = export_all(mesh, [red], tmp_path / "textured", "crate")
    out = tmp_path / "turntable.gif"
    result = invoke("render", str(files.obj), "--out", str(out), "--frames", "4", "--size", "64")
    assert result.exit_code == 0, result.output
    gif = Image.open(out)
    assert gif.n_frames == 4
    frame = np.asarray(gif.convert("RGB")).astype(int)
    foreground = (frame != 255).any(-1)
    assert foreground.mean() > 0.1
    assert (frame[foreground][:, 0] > frame[foreground][:, 1] + 60).mean() > 0.9

    sheet = tmp_path / "sheet.png"
    assert invoke("render", str(files.glb), "--out", str(sheet), "--frames", "3", "--size", "32").exit_code == 0
    assert Image.open(sheet).size == (96, 32)


def test_render_writes_mp4_when_imageio_ffmpeg_is_present(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    out = tmp_path / "turntable.mp4"
    result = invoke("render", str(ASSETS / "vase.obj"), "--out", str(out), "--frames", "6", "--size", "64")
    assert result.exit_code == 0, result.output
    reader = imageio.get_reader(out)
    assert reader.count_frames() == 6 and reader.get_meta_data()["size"] == (64, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.mp4"]
    # an odd size was a 0-byte file reported as written (new-user test, session 12): now one more row and column
    odd = tmp_path / "odd.mp4"
    result = invoke("render", str(ASSETS / "vase.obj"), "--out", str(odd), "--frames", "3", "--size", "63")
    assert result.exit_code == 0, result.output
    reader = imageio.get_reader(odd)
    assert reader.count_frames() == 3 and reader.get_meta_data()["size"] == (64, 64)


@pytest.mark.parametrize(
    "args, message",
    [
        (["render", "MISSING.obj"], "does not exist"),
        (["render", "VASE", "--out", "x.bmp"], "unsupported preview format"),
        (["info", "MISSING.obj"], "does not exist"),
        (["info", "README"], "unsupported"),
    ],
)
def test_bad_input_gives_one_line_and_a_non_zero_exit(tmp_path, args, message):
    readme = tmp_path / "README.md"
    readme.write_text("not a mesh")
    args = [a.replace("VASE", str(ASSETS / "vase.obj")).replace("MISSING.obj", str(tmp_path / "missing.obj"))
            .replace("README", str(readme)) for a in args]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert message in result.output
    assert not (Path.cwd() / "x.bmp").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_render_on_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    result = invoke("render", str(ASSETS / "crate.obj"), "--out", str(tmp_path / "p.gif"), "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU" in result.output
    assert not (tmp_path / "p.gif").exists()


def test_version():
    assert __version__ in invoke("--version").output


def test_command_line_prefers_expandable_segments_unless_the_user_chose():
    """The console script sets torch's allocator settings (expandable segments, what lets the default SD paint fit
    8 GB) only when neither PYTORCH_CUDA_ALLOC_CONF nor PYTORCH_ALLOC_CONF is set, and the library never does."""
    environ: dict[str, str] = {}
    assert prefer_allocator_settings(environ) and environ == {"PYTORCH_CUDA_ALLOC_CONF": ALLOCATOR_SETTINGS}
    for name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        environ = {name: "max_split_size_mb:128"}
        assert not prefer_allocator_settings(environ) and environ == {name: "max_split_size_mb:128"}


def test_python_dash_m_csdtex_runs_the_command_line_with_its_allocator_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARIABLES}
    probe = ("import os, runpy, sys; sys.argv = ['csdtex', '--version']\n"
             "try:\n    runpy.run_module('csdtex', run_name='__main__')\n"
             "except SystemExit:\n    print(os.environ.get('PYTORCH_CUDA_ALLOC_CONF'))\n")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [f"csdtex, version {__version__}", "expandable_segments:True"]
    library = subprocess.run([sys.executable, "-c", "import os, csdtex.painting, csdtex.cli; "
                              "print(os.environ.get('PYTORCH_CUDA_ALLOC_CONF'))"], env=env, capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    assert library.returncode == 0 and library.stdout.strip() == "None", library.stderr[-2000:]


def test_an_output_path_too_long_for_the_file_system_is_one_line(tmp_path):
    """`--out o/<300 letters>` gave a traceback (OSError: File name too long) from paint, render and bench seams
    (new-user test, session 14): one line, exit 2."""
    long = tmp_path / ("a" * 300)
    for args in (["paint", str(ASSETS / "vase.obj"), "a red object", "--out", str(long)],
                 ["render", str(ASSETS / "vase.obj"), "--out", str(tmp_path / ("b" * 300 + ".png"))],
                 ["bench", "seams", "proc:mismatch", "--out", str(long)]):
        result = CliRunner().invoke(main, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and "File name too long" in lines[0], (args, result.output)


def test_python_calls_with_arguments_of_the_wrong_type_get_one_line(tmp_path):
    """Wrong types in a Python call raised TypeError / AttributeError from deep inside (new-user test, session 14):
    each is a one-line ConfigError before any work; a single material name is one name, not its letters."""
    import csdtex
    from csdtex.errors import ConfigError

    vase = ASSETS / "vase.obj"
    bad_configs = [dict(model=123), dict(device=0), dict(negative_prompt=5), dict(coverage={"share": 0.5}),
                   dict(guidance={"w1": "1"}), dict(guidance={"w1": None}), dict(guidance={"w1": [1, 2]}),
                   dict(guidance={"w1": True}), dict(seed=2**70)]
    for values in bad_configs:
        with pytest.raises(ConfigError, match=f"{next(iter(values))}"):
            csdtex.PaintConfig(**values).validate()
    with pytest.raises(ConfigError, match="preserve must be a number"):
        csdtex.EditConfig(preserve="0.5").validate()
    calls = [(lambda: csdtex.paint(vase, "a red object", {"steps": 1}, out_dir=tmp_path / "o"), "config must be"),
             (lambda: csdtex.paint(vase, 5, out_dir=tmp_path / "o"), "prompt must be a string"),
             (lambda: csdtex.paint(None, "a red object", out_dir=tmp_path / "o"), "mesh must be a path"),
             (lambda: csdtex.paint(vase, "a red object", out_dir=5), "out_dir must be a path"),
             (lambda: csdtex.edit(vase, "a", "b", csdtex.PaintConfig(), out_dir=tmp_path / "o"),
              "config must be a csdtex.EditConfig")]
    for call, message in calls:
        with pytest.raises(ConfigError, match=message):
            call()
    assert not (tmp_path / "o").exists()
    box = export_all(load_mesh(ASSETS / "crate.obj"), [np.full((8, 8, 3), 200, np.uint8)], tmp_path / "box", "box")
    with pytest.raises(ConfigError, match="'material_9' is not a material"):
        csdtex.edit(box.obj, "a blue box", "a gray box", out_dir=tmp_path / "e", materials="material_9")


def test_nvdiffrast_on_the_cpu_is_refused_before_any_long_work(tmp_path):
    """`--renderer nvdiffrast` on a CPU run failed only at the first render, after unwrapping and loading the prior
    (new-user test, session 14): one line before any of it."""
    from csdtex.errors import DeviceError
    from csdtex.render import resolve_backend

    with pytest.raises(DeviceError, match="needs a CUDA device"):
        resolve_backend("nvdiffrast", "cpu")
    result = invoke("paint", str(ASSETS / "vase.obj"), "a red object", "--device", "cpu", "--renderer", "nvdiffrast",
                    "--out", str(tmp_path / "o"))
    assert result.exit_code != 0 and "needs a CUDA device" in result.output and "load_prior" not in result.output
    assert not (tmp_path / "o").exists()


def test_progress_into_a_log_file_is_plain_lines_not_redraws(capsys, monkeypatch):
    """Piped to a file, the bar wrote one carriage-return redraw per step on one giant line (new-user test, session
    15): a stderr that is not a terminal gets a plain line per tenth of the run."""
    import time as time_module

    from csdtex.pipeline.progress import TqdmProgress

    clock = {"now": 0.0}
    monkeypatch.setattr(time_module, "monotonic", lambda: clock["now"])
    progress = TqdmProgress("painting")
    progress.start(200, 0)
    for step in range(1, 201):
        clock["now"] += 0.5
        progress.update(step, {"grad_norm": 1.5, "t": 300.0} if step % 10 == 0 else None)
    progress.close()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "\r" not in err and 9 <= len(lines) <= 11, err
    assert lines[-1].startswith("painting: 200/200 steps (100%), 100 s") and "grad 1.5, t 300" in lines[-1]
