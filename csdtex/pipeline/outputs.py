"""Who owns an output folder: one asset's outputs per folder, replaced as a whole by a rerun.

A run's outputs are ``<name>.obj``, ``<name>.mtl``, its PNG textures, ``<name>.glb``, its previews and ``run.json``
(the record of the run, written last). Before any long work, :func:`claim_output_folder` finds the outputs already in
the folder:

- outputs of the *same* asset (same output name) are replaced by the new run: files the new run writes again are
  renamed over atomically; files it does not write again (a texture of a material that no longer exists, say) are
  removed once the new outputs are complete (:func:`remove_replaced_outputs`, called after ``run.json`` is written);
- outputs of *another* asset (``run.json`` names another output set, or a csdtex GLB of another name is there) make
  the run fail at once with one line, unless ``overwrite`` is set: then they are removed likewise, only after the new
  outputs are complete, so an interrupted run leaves the old outputs as they were.

A file counts as replaced only if it is still the file seen at the start (same inode and modification time), so a
file the new run has written is never removed. The files a run reads (the mesh, its textures) are never outputs: a run
whose outputs would land on one of them fails at once (:func:`check_inputs_kept`). One run writes into a folder at a
time (:func:`run_folder_lock`): a second run into the same folder fails at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Iterator

from csdtex.errors import ConfigError

__all__ = ["PREVIEW_SUFFIXES", "RUN_LOCK", "check_inputs_kept", "claim_output_folder", "remove_replaced_outputs",
           "run_folder_lock", "stale_outputs"]

PREVIEW_SUFFIXES = ("_turntable.gif", "_turntable.mp4", "_views.png", "_before_after.gif", "_before_after.png")
"""Suffixes (after the asset name) of the preview files paint and edit write."""

RUN_RECORD = "run.json"

RUN_LOCK = ".csdtex.lock"
"""The lock file a paint, edit or batch run holds in its output folder while it runs (removed at the end)."""

FileStamp = tuple[int, int]


def _stamp(path: Path) -> FileStamp | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns)


def read_run_record(folder: str | os.PathLike) -> dict | None:
    """The ``run.json`` of a run's output folder as a dict, or None when there is none or it is unreadable."""
    try:
        record = json.loads((Path(folder) / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _recorded_outputs(out_dir: Path) -> tuple[str | None, set[str]]:
    """(asset name, file names) from ``run.json``; (None, empty) when there is no readable record."""
    record = read_run_record(out_dir)
    if record is None:
        return None, set()
    outputs = record.get("outputs")
    if not isinstance(outputs, dict):
        return None, set()
    names: set[str] = set()
    for value in outputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and Path(item).name == item:
                names.add(item)
    edit = record.get("edit")
    if isinstance(edit, dict) and isinstance(edit.get("before_after"), str):
        names.add(Path(edit["before_after"]).name)
    main = outputs.get("glb") or outputs.get("obj")
    stem = Path(main).stem if isinstance(main, str) and main else None
    return stem, names


def _is_csdtex_glb(path: Path) -> bool:
    """True for a GLB whose ``asset.generator`` is csdtex's (reads only the JSON chunk's start)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
            if len(header) < 20 or header[:4] != b"glTF":
                return False
            length = struct.unpack_from("<I", header, 12)[0]
            document = json.loads(handle.read(min(length, 1 << 24)).decode("utf-8"))
    except (OSError, ValueError, struct.error):
        return False
    return isinstance(document, dict) and (document.get("asset") or {}).get("generator") == "csdtex"


def _output_names(stem: str) -> set[str]:
    """The fixed output file names of asset ``stem``: model files, its single-material texture, previews (material
    textures ``<stem>_<label>.png`` come on top)."""
    return {f"{stem}{suffix}" for suffix in (".obj", ".mtl", ".glb", ".png", *PREVIEW_SUFFIXES)}


_MTL_MAP_KEYS = ("map_kd", "map_d", "map_bump", "map_ke", "map_pr", "map_pm")
"""The MTL statements whose file csdtex writes: the texture and the carried maps (:func:`csdtex.export.export_obj`)."""


def _asset_files(out_dir: Path, stem: str) -> set[str]:
    """The csdtex output files of asset ``stem`` present in ``out_dir``: model files, the MTL's textures, previews."""
    names = _output_names(stem)
    mtl = out_dir / f"{stem}.mtl"
    with contextlib.suppress(OSError):
        for line in mtl.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].lower() in _MTL_MAP_KEYS and Path(parts[-1]).name == parts[-1]:
                names.add(parts[-1])  # csdtex writes plain file names, options (-bm 0.5) before them
    return {name for name in names if (out_dir / name).is_file()}


def written_by_csdtex(out_dir: str | os.PathLike) -> set[str]:
    """The names of the files in ``out_dir`` that a csdtex run wrote there: the outputs its ``run.json`` lists and
    the model files, textures and previews of that asset, ``run.json`` itself. Everything else in the folder (a
    retouched copy, the artist's notes) is somebody else's."""
    out_dir = Path(out_dir)
    stem, recorded = _recorded_outputs(out_dir)
    names = set(recorded) | ({RUN_RECORD} if (out_dir / RUN_RECORD).is_file() else set())
    if stem is not None:
        names |= _asset_files(out_dir, stem)
    return names


def _is_output_name(file_name: str, name: str) -> bool:
    """True when ``file_name`` is one of the names a run of asset ``name`` may write (model files, textures
    ``<name>.png`` / ``<name>_<material>.png``, previews, ``run.json``)."""
    if file_name == RUN_RECORD or file_name in _output_names(name):
        return True
    return file_name.startswith(f"{name}_") and file_name.lower().endswith(".png")


def check_inputs_kept(out_dir: str | os.PathLike, name: str, input_files) -> None:
    """Refuse a run whose outputs would replace one of the files it reads.

    Writing the outputs of asset ``name`` into the folder that holds its own mesh (``--out .`` next to
    ``scene.glb``) would otherwise rename the painted ``scene.glb`` over the artist's source file, and a texture
    ``<name>.png`` over an input texture of that name.

    Args:
        out_dir: the output folder (need not exist).
        name: the run's output name (:func:`csdtex.export.safe_asset_name` of the mesh file's stem).
        input_files: paths the run reads (the mesh file, its texture files); None entries are skipped.
    Raises:
        ConfigError: one line naming the input file and the remedy (another ``--out``).
    """
    out_dir = Path(out_dir)
    with contextlib.suppress(OSError):
        out_resolved = out_dir.resolve()
        for path in input_files:
            if path is None:
                continue
            path = Path(path)
            if path.parent.resolve() == out_resolved and _is_output_name(path.name, name):
                raise ConfigError(
                    f"output folder {out_dir} holds the input file '{path.name}', which the outputs ({name}.obj, "
                    f"{name}.glb, textures) would replace: choose another --out"
                )


def claim_output_folder(out_dir: str | os.PathLike, name: str, overwrite: bool = False) -> dict[str, FileStamp]:
    """Check that ``out_dir`` may receive the outputs of asset ``name``; list the earlier outputs the run replaces.

    Args:
        out_dir: the output folder (need not exist).
        name: the new run's output name (:func:`csdtex.export.safe_asset_name` of the mesh file's stem).
        overwrite: replace the outputs of another asset instead of refusing.
    Returns:
        file name -> (inode, mtime_ns) of every earlier output in the folder (of this asset, and of another one
        when ``overwrite``), to give to :func:`remove_replaced_outputs` once the new outputs are complete.
    Raises:
        ConfigError: the folder holds another asset's outputs and ``overwrite`` is False (one line, naming them).
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return {}
    recorded_stem, recorded = _recorded_outputs(out_dir)
    others: dict[str, set[str]] = {}
    if recorded_stem is not None and recorded_stem != name:
        others[recorded_stem] = recorded | _asset_files(out_dir, recorded_stem) | {RUN_RECORD}
    for glb in sorted(out_dir.glob("*.glb")):
        if glb.stem != name and glb.stem not in others and _is_csdtex_glb(glb):
            others[glb.stem] = _asset_files(out_dir, glb.stem)
    if others and not overwrite:
        first = next(iter(others))
        shown = ", ".join(sorted(others[first]))[:160]
        more = f" (and of {len(others) - 1} more)" if len(others) > 1 else ""
        raise ConfigError(
            f"output folder {out_dir} holds the outputs of another asset '{first}' ({shown}){more}: choose another "
            "--out, or pass --overwrite to replace them"
        )
    replaced = set().union(*others.values()) if others else set()
    own = _asset_files(out_dir, name) | ({RUN_RECORD} if (out_dir / RUN_RECORD).is_file() and not others else set())
    if recorded_stem == name:
        replaced |= recorded
    elif own and not _is_csdtex_glb(out_dir / f"{name}.glb"):
        # Files named like this run's outputs, but no csdtex record or GLB of this asset says csdtex wrote them:
        # the user's own files (a reference photo vase.png, their own run.json), never replaced or deleted silently.
        if not overwrite:
            shown = ", ".join(sorted(own))[:160]
            raise ConfigError(f"output folder {out_dir} holds {shown}, named like this run's outputs but not written "
                              "by csdtex: choose another --out, or pass --overwrite to replace them")
    replaced |= own
    stamps = {}
    for file_name in sorted(replaced):
        stamp = _stamp(out_dir / file_name)
        if stamp is not None:
            stamps[file_name] = stamp
    return stamps


def stale_outputs(out_dir: str | os.PathLike, replaced: dict[str, FileStamp]) -> list[str]:
    """The names in ``replaced`` whose file is still the one seen at the claim (not written again by the new run)."""
    out_dir = Path(out_dir)
    return [name for name, stamp in replaced.items() if _stamp(out_dir / name) == stamp]


def remove_replaced_outputs(out_dir: str | os.PathLike, replaced: dict[str, FileStamp]) -> list[str]:
    """Remove the earlier outputs listed by :func:`claim_output_folder` that the new run did not write again.

    Call it only after every new output (``run.json`` last) is in place. A file is removed only when it is still the
    one seen at the claim (same inode and mtime); files the new run renamed into place are kept.

    Returns:
        the names of the removed files.
    """
    out_dir = Path(out_dir)
    removed = []
    for file_name, stamp in replaced.items():
        path = out_dir / file_name
        if _stamp(path) == stamp and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(file_name)
    return removed


@contextlib.contextmanager
def run_folder_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``out_dir`` for one paint or edit run (:func:`csdtex.fileio.folder_lock` on :data:`RUN_LOCK`).

    Checks first that the folder can be created and written (:func:`csdtex.pipeline.prepare.check_writable`); creates
    it; a run that fails before writing anything leaves no folder behind.

    Raises:
        ConfigError: the folder cannot be written, or another csdtex run (paint or edit, in any process) is writing
            into it now.
    """
    from csdtex.fileio import folder_lock
    from csdtex.pipeline.prepare import check_writable

    out_dir = Path(out_dir)
    check_writable(out_dir)
    busy = (f"another csdtex run is writing into {out_dir} right now: wait for it to finish, or choose another --out "
            "(a batch gives every asset its own folder)")
    with folder_lock(out_dir, RUN_LOCK, ConfigError(busy)) as folder:
        remove_stale_temporaries(folder)
        yield folder


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")
"""The names :func:`csdtex.fileio.atomic_path` gives its temporary files (``.<stem>.<8 random>.tmp<suffix>``)."""


def remove_stale_temporaries(out_dir: Path) -> list[str]:
    """Remove the temporary files an earlier run left in ``out_dir`` when it was killed outright (SIGKILL, out of
    memory) before it could clean up; call it only while holding the folder's lock, when no run writes there.
    Returns their names."""
    removed = []
    with contextlib.suppress(OSError):
        for path in out_dir.iterdir():
            if _TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
    return removed
