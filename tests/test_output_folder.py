"""An output folder is never left half old, half new, and files csdtex did not write are never replaced silently."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trimesh
from click.testing import CliRunner

from csdtex.cli import main
from csdtex.fileio import atomic_path, staged_destinations, staged_outputs, write_text_atomic

FAST = ["--steps", "2", "--views-per-step", "1", "--texture-size", "32", "--quiet"]


def test_staged_files_appear_together_at_the_end_or_not_at_all(tmp_path):
    with staged_outputs():
        write_text_atomic(tmp_path / "a.txt", "a")
        with atomic_path(tmp_path / "b.txt") as temporary:
            temporary.write_text("b")
        assert not (tmp_path / "a.txt").exists() and not (tmp_path / "b.txt").exists()
        assert [p.name for p in staged_destinations()] == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "b.txt").read_text() == "b"
    assert staged_destinations() == []

    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_outputs():
            write_text_atomic(tmp_path / "a.txt", "new")
            write_text_atomic(tmp_path / "c.txt", "new")
            raise KeyboardInterrupt
    assert (tmp_path / "a.txt").read_text() == "old" and not (tmp_path / "c.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temporaries left


@pytest.fixture(scope="module")
def ball(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ball") / "ball.obj"
    trimesh.creation.icosphere(1).export(path)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_an_interrupt_while_the_previews_render_keeps_the_earlier_run_whole(tmp_path, ball, monkeypatch):
    out = tmp_path / "out"
    first = CliRunner().invoke(main, ["paint", str(ball), "a blue object", "--out", str(out), *FAST])
    assert first.exit_code == 0, first.output
    before = digest(out)

    import csdtex.pipeline.finalize as finalize

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(finalize, "turntable_frames", interrupted)  # after the bake and the model files' export
    second = CliRunner().invoke(main, ["paint", str(ball), "a red object", "--out", str(out), *FAST])
    assert second.exit_code == 130 and "no partial outputs were kept" in second.output
    assert digest(out) == before  # the blue run's files, all of them and only them: no new model files, no temps


def test_files_named_like_outputs_but_not_written_by_csdtex_are_not_replaced(tmp_path, ball):
    out = tmp_path / "project"
    out.mkdir()
    (out / "ball.png").write_text("my reference photo")
    (out / "ball_turntable.mp4").write_text("my own video")
    (out / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["paint", str(ball), "a red object", "--out", str(out), *FAST])
    assert result.exit_code == 2 and "not written by csdtex" in result.output
    assert "ball.png" in result.output and "--overwrite" in result.output
    assert (out / "ball.png").read_text() == "my reference photo" and (out / "ball_turntable.mp4").exists()
    # A csdtex run into the same folder of its own earlier outputs replaces them as before.
    fresh = tmp_path / "fresh"
    for _ in range(2):
        again = CliRunner().invoke(main, ["paint", str(ball), "a red object", "--out", str(fresh), *FAST])
        assert again.exit_code == 0, again.output
    # With --overwrite the user's files may go; unrelated files stay.
    forced = CliRunner().invoke(main, ["paint", str(ball), "a red object", "--out", str(out), "--overwrite", *FAST])
    assert forced.exit_code == 0, forced.output
    assert (out / "ball.png").read_bytes()[:4] == b"\x89PNG" and (out / "notes.txt").read_text() == "keep me"


def test_sigterm_stops_a_paint_like_ctrl_c_and_a_later_run_sweeps_what_a_kill_left(tmp_path, ball):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    (tmp_path / "no_checkpoints.toml").write_text("checkpoint_every = 0\n")
    process = subprocess.Popen([sys.executable, "-m", "csdtex", "paint", str(ball), "a red object", "--out", str(out),
                                "--steps", "100000", "--views-per-step", "1", "--texture-size", "32",
                                "--config", str(tmp_path / "no_checkpoints.toml")],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while not (out / ".csdtex.lock").exists():  # the run holds its folder: loading, then optimizing
        assert process.poll() is None and time.time() < deadline, "the paint ended before it started"
        time.sleep(0.05)
    time.sleep(3.0)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 143, rest
    assert "error: stopped by SIGTERM" in rest and "Traceback" not in rest
    assert not out.exists() or not any(out.iterdir())  # no lock, no temporaries, nothing half-written

    out.mkdir(exist_ok=True)
    left = out / ".ball.abcd1234.tmp.png"  # what a SIGKILL during an export leaves
    left.write_bytes(b"partial")
    result = CliRunner().invoke(main, ["paint", str(ball), "a red object", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert not left.exists()
