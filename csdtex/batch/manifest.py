"""Reading a batch's input into validated rows: a CSV or JSONL manifest, or a folder of meshes.

Formats
-------
- **CSV** (``.csv``, UTF-8, optional BOM): a header row, then one asset per row. Columns: ``mesh`` and ``prompt``
  (required), ``out`` (the asset's output folder name, optional), the edit columns ``source`` (text: the texture as
  it is now, like ``csdtex edit --source``), ``mask`` (a PNG path) and ``material`` (``--task edit`` only), and
  any :class:`~csdtex.config.PaintConfig` option by its field name (``steps``, ``seed``, ``negative_prompt``,
  ``guidance_method``, ...; nested ones dotted: ``field.log2_hashmap_size``, ``cameras.fov_deg``, ``guidance.w1``).
  An empty cell leaves the option at the batch's value. Cells are text: a cell is taken as written when the option
  accepts it, else read as JSON (``12``, ``0.5``, ``true``, ``[30, 40]``).
- **JSONL** (``.jsonl`` / ``.ndjson``): one JSON object per line with the same keys; options may also be nested
  objects (``{"field": {"log2_hashmap_size": 14}}``). Blank lines are skipped.
- **Folder**: every mesh file under it (recursively; hidden entries, the output folder and csdtex output folders
  skipped). A
  ``prompts.csv`` in the folder is a CSV manifest for it (``mesh`` relative to the folder); meshes it does not list
  take ``--prompt``, and without ``--prompt`` every mesh must be listed.

Relative paths are relative to the manifest's folder. Every path must resolve inside an allowed root: the
manifest's folder (or the input folder) and any ``--root`` folder. Each option is checked by
:func:`csdtex.config.apply_overrides` (the one place that knows the options and their types), starting from the
batch's own config (command line and ``--config``). A row's mesh file is not opened here: a missing or corrupt
mesh is a failure of that asset, recorded when it runs, not bad input.

Output names
------------
Each asset writes ``<out>/<name>/``. ``name`` is the ``out`` cell (which must already be a safe folder name), else
the mesh's file stem made safe (:func:`csdtex.export.safe_asset_name`). Rows whose names collide (compared without
case) take as many parent folders as needed to differ (``a/chair.obj`` -> ``a_chair``, ``b/chair.obj`` ->
``b_chair``); rows of the very same mesh file get ``-2``, ``-3``, ... in manifest order. The names depend only on
the manifest, so a rerun finds every asset's folder again; and when rows are added or reordered, a derived name
gives way to the folder that already holds the row's finished asset (:func:`csdtex.batch.runner.plan_batch`), so a
finished asset is never renamed and painted again.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from csdtex.config import DEFAULT_MODEL, EDIT_ONLY_OPTIONS, PaintConfig, apply_overrides
from csdtex.errors import ConfigError
from csdtex.export import safe_asset_name
from csdtex.fileio import is_within
from csdtex.mesh import SUPPORTED_EXTENSIONS

TASKS = ("paint", "edit")
"""What a batch does to each row: ``paint`` (:func:`csdtex.paint`) or ``edit`` (``csdtex.editing.edit``)."""

ROW_COLUMNS = ("mesh", "prompt", "out")
EDIT_COLUMNS = ("source", "mask", "material")
EDIT_PATH_COLUMNS = ("mask",)
"""Edit columns that name files (resolved like ``mesh``); ``source`` and ``material`` are text."""
PROMPTS_FILE = "prompts.csv"
RESERVED_NAMES = ("summary.json", "summary.html")
"""Files of the batch itself in the output folder; no asset folder takes these names."""
BATCH_LEVEL_OPTIONS = {"device": "--device"}
"""PaintConfig fields set once for the whole batch (workers are placed on devices), never per row."""
MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class ManifestError(ConfigError):
    """The batch input is unusable (missing, unreadable, a bad row); ``str()`` is one line naming the row."""


@dataclass(frozen=True)
class AssetRow:
    """One asset of a batch, validated.

    Attributes:
        where: where the row came from, for messages (``"jobs.csv line 4"``, ``"folder /data/props"``).
        name: output folder name under the batch's output folder (safe, unique in the batch, case-insensitively).
        task: ``"paint"`` or ``"edit"``.
        mesh: the mesh file (the manifest's folder joined with the cell; not opened yet).
        prompt: the text prompt, stripped (not empty).
        config: the batch's config with the row's options applied; ``model`` filled in (never None).
        options: the row's own options as given (``{"steps": 12, "field": {...}}``), for the report.
        source: the edit's description of the texture as it is now (text, like ``csdtex edit --source``).
        mask: the edit's UV-space mask PNG (a path resolved like ``mesh``), or None.
        material: the one material to edit (text), or None for every textured material.
    """

    where: str
    name: str
    task: str
    mesh: Path
    prompt: str
    config: PaintConfig
    options: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    mask: Path | None = None
    material: str | None = None
    named_by_out: bool = False
    """The name is the row's ``out`` cell (kept as given), not derived from the mesh path."""


@dataclass(frozen=True)
class Manifest:
    """The validated input of a batch: ``rows`` in manifest order and ``description`` (what was read)."""

    rows: list[AssetRow]
    description: str
    notes: tuple[str, ...] = ()
    """What a folder scan left out that a user may have meant to include (meshes of formats csdtex cannot read,
    linked folders, csdtex's own output folders), one line each, for the command to show."""


def load_manifest(
    path: str | os.PathLike,
    *,
    task: str = "paint",
    config: PaintConfig | None = None,
    prompt: str | None = None,
    roots: Sequence[str | os.PathLike] = (),
    out_dir: str | os.PathLike | None = None,
) -> Manifest:
    """Read and validate a batch input.

    Args:
        path: a ``.csv`` / ``.jsonl`` manifest or a folder of meshes (see the module docstring for the formats).
        task: ``"paint"`` or ``"edit"`` (``edit`` requires a ``source`` column and allows ``mask`` / ``material``).
        config: the batch's options (command line, ``--config``); rows start from it. Default :class:`PaintConfig`.
        prompt: for a folder: the prompt of every mesh that ``prompts.csv`` does not list.
        roots: more folders that manifest paths may point into (besides the manifest's own folder).
        out_dir: the batch's output folder; a folder input skips meshes inside it.
    Returns:
        :class:`Manifest` with at least one row.
    Raises:
        ManifestError: one line naming the file and row: missing or unreadable input, a row without ``mesh`` or
            ``prompt``, an unknown column, a bad value (the :func:`apply_overrides` message), a path outside the
            allowed roots, an unsafe or duplicate ``out``, an empty folder, a folder mesh without a prompt.
    """
    if task not in TASKS:
        raise ManifestError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    config = config or PaintConfig()
    if not config.model:
        config = dataclasses.replace(config, model=DEFAULT_MODEL)
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest {path} does not exist: pass a .csv or .jsonl file or a folder of meshes")
    allowed = [path if path.is_dir() else path.parent, *(Path(root) for root in roots)]
    for root in allowed[1:]:
        if not root.is_dir():
            raise ManifestError(f"--root {root} is not a folder")
    reader = _RowReader(task, config, allowed)
    notes: list[str] = []
    if path.is_dir():
        rows = _folder_rows(path, reader, prompt, out_dir, notes)
        description = f"folder {path}"
    else:
        kind = MANIFEST_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ManifestError(f"manifest {path} has an unsupported extension {path.suffix or '(none)'!r}: use "
                                f".csv, .jsonl or a folder of meshes")
        records = reader.checked_csv(path) if kind == "csv" else _read_jsonl(path)
        rows = [reader.row(record, where, path.parent) for where, record in records]
        if not rows:
            raise ManifestError(f"manifest {path} has no rows: add one asset per row (columns mesh, prompt)")
        description = f"{kind.upper()} manifest {path}"
    return Manifest(rows=assign_names(rows, allowed), description=description, notes=tuple(notes))


# ----------------------------------------------------------------------------------------------------------------
# Files -> records ({column: value}, with where each came from)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"cannot read manifest {path}: it is not UTF-8 text ({error.reason} at byte "
                            f"{error.start}); save it as UTF-8") from None
    except OSError as error:
        raise ManifestError(f"cannot read manifest {path}: {error.strerror or error}") from None


def _read_csv(path: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """(column names, [(where, {column: non-empty cell})]) of a CSV file with a header row."""
    text = _read_text(path)
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ManifestError(f"manifest {path} is empty: the first line must name the columns (mesh,prompt,...)")
        names = [cell.strip() for cell in header]
        for index, name in enumerate(names):
            if not name:
                raise ManifestError(f"{path.name} line 1: column {index + 1} has no name")
            if names.index(name) != index:
                raise ManifestError(f"{path.name} line 1: column {name!r} appears twice")
        records = []
        for cells in reader:
            where = f"{path.name} line {reader.line_num}"
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names):
                raise ManifestError(f"{where} has {len(cells)} cells but the header names {len(names)} columns")
            records.append((where, {name: cell for name, cell in zip(names, cells) if cell.strip() != ""}))
    except csv.Error as error:
        raise ManifestError(f"cannot read manifest {path}: line {reader.line_num} is not valid CSV ({error})") from None
    return names, records


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{where} is not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise ManifestError(f"{where} must be a JSON object like {{\"mesh\": \"chair.obj\", \"prompt\": \"...\"}}")
        records.append((where, record))
    return records


def _folder_rows(folder: Path, reader: "_RowReader", prompt: str | None,
                 out_dir: str | os.PathLike | None, notes: list[str]) -> list[AssetRow]:
    left_out: dict[str, list[str]] = {}
    meshes = list(find_meshes(folder, skip=[Path(out_dir)] if out_dir else [], left_out=left_out))
    notes.extend(_left_out_notes(left_out))
    listed: dict[Path, list[AssetRow]] = {}
    prompts_file = folder / PROMPTS_FILE
    if prompts_file.is_file():
        for where, record in reader.checked_csv(prompts_file):
            row = reader.row(record, where, folder)
            listed.setdefault(_resolved(row.mesh), []).append(row)
    elif not meshes:
        suffixes = ", ".join(SUPPORTED_EXTENSIONS)
        raise ManifestError(f"folder {folder} holds no mesh files ({suffixes}) and no {PROMPTS_FILE}")
    unlisted = [mesh for mesh in meshes if _resolved(mesh) not in listed]
    if unlisted and prompt is None:
        shown = ", ".join(str(mesh.relative_to(folder)) for mesh in unlisted[:3])
        more = f" and {len(unlisted) - 3} more" if len(unlisted) > 3 else ""
        if prompts_file.is_file():
            raise ManifestError(f"{len(unlisted)} mesh(es) in {folder} have no row in {PROMPTS_FILE} ({shown}{more}): "
                                "add rows for them or pass --prompt")
        raise ManifestError(f"folder {folder} has no {PROMPTS_FILE}: pass --prompt \"...\" (the same prompt for every "
                            f"mesh) or add {PROMPTS_FILE} with columns mesh,prompt")
    rows = [row for rows in listed.values() for row in rows]
    for mesh in unlisted:
        rows.append(reader.row({"mesh": str(mesh.relative_to(folder)), "prompt": prompt},
                               f"folder {folder.name}/{mesh.relative_to(folder)}", folder))
    if not rows:
        raise ManifestError(f"{prompts_file} has no rows: add one per mesh (columns mesh,prompt)")
    return rows


OTHER_MESH_FORMATS = (".fbx", ".dae", ".usd", ".usda", ".usdc", ".usdz", ".blend", ".3ds", ".max", ".ma", ".mb",
                      ".abc", ".x3d", ".wrl", ".3mf", ".dxf", ".lwo", ".c4d")
"""Extensions of 3D files csdtex does not read: a folder scan names them instead of leaving them out silently."""


def is_csdtex_output_folder(path: Path) -> bool:
    """A folder a csdtex run or batch wrote: a ``batch.json``, or a ``run.json`` with csdtex's record keys (another
    tool's ``run.json`` does not make a folder of source meshes an output folder)."""
    from csdtex.pipeline.outputs import read_run_record

    if (path / "batch.json").is_file():
        return True
    return {"prompt", "outputs", "config"} <= set(read_run_record(path) or {})


def find_meshes(folder: Path, skip: Iterable[Path] = (), left_out: dict[str, list[str]] | None = None
                ) -> Iterable[Path]:
    """Mesh files (:data:`csdtex.mesh.SUPPORTED_EXTENSIONS`) under ``folder``, recursively, in sorted order.

    Left out: hidden files and folders (``.name``), the folders in ``skip``, csdtex's own output folders
    (:func:`is_csdtex_output_folder`), so painted results are never painted again, and linked folders (not
    followed). ``left_out``, when given, receives the paths (relative to ``folder``) of the last two and of files
    of 3D formats csdtex does not read (:data:`OTHER_MESH_FORMATS`), under the keys ``"outputs"``, ``"links"`` and
    ``"formats"``, for :func:`_left_out_notes`.
    """
    skipped = [_resolved(path) for path in skip]
    left_out = {} if left_out is None else left_out

    def note(kind: str, path: Path) -> None:
        left_out.setdefault(kind, []).append(path.relative_to(folder).as_posix())

    def wanted(path: Path) -> bool:
        if path.name.startswith(".") or _resolved(path) in skipped:
            return False
        if path.is_symlink():
            note("links", path)
            return False
        if is_csdtex_output_folder(path):
            note("outputs", path)
            return False
        return True

    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if wanted(Path(directory) / d))
        for name in sorted(files):
            suffix = Path(name).suffix.lower()
            if not name.startswith(".") and suffix in SUPPORTED_EXTENSIONS:
                yield Path(directory) / name
            elif not name.startswith(".") and suffix in OTHER_MESH_FORMATS:
                note("formats", Path(directory) / name)


def _left_out_notes(left_out: dict[str, list[str]]) -> list[str]:
    """One line per kind of what :func:`find_meshes` left out (a few paths named)."""
    def some(paths: list[str]) -> str:
        return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")

    notes = []
    if left_out.get("formats"):
        paths = left_out["formats"]
        kinds = ", ".join(sorted({Path(p).suffix.lower() for p in paths}))
        notes.append(f"left out {len(paths)} file(s) of formats csdtex does not read ({kinds}: {some(paths)}): "
                     f"export them as .glb or .obj to paint them")
    if left_out.get("links"):
        notes.append(f"left out linked folder(s) {some(left_out['links'])} (links are not followed): run a batch on "
                     "the folder itself, or list its meshes in prompts.csv and pass --root")
    if left_out.get("outputs"):
        notes.append(f"left out {len(left_out['outputs'])} folder(s) of csdtex outputs ({some(left_out['outputs'])})")
    return notes


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


# ----------------------------------------------------------------------------------------------------------------
# Records -> rows


class _RowReader:
    """Turns one record ({column: value}) into an :class:`AssetRow` (without its final name)."""

    def __init__(self, task: str, config: PaintConfig, allowed: list[Path]) -> None:
        self.task, self.config, self.allowed = task, config, allowed
        self.option_names = {f.name for f in dataclasses.fields(type(config))}  # an edit batch's: EditConfig's

    def checked_csv(self, path: Path) -> list[tuple[str, dict[str, Any]]]:
        """The records of CSV file ``path``, after checking every column name of its header (also of columns
        whose cells are all empty)."""
        names, records = _read_csv(path)
        for name in names:
            if name not in ROW_COLUMNS + EDIT_COLUMNS:
                self._check_option(name, f"{path.name} line 1")
        return records

    def _check_option(self, key: str, where: str) -> None:
        top = key.split(".", 1)[0]
        if top not in self.option_names and top in EDIT_ONLY_OPTIONS:
            raise ManifestError(f"{where}: column {key!r} is an option of csdtex edit; remove it or use --task edit")
        if top not in self.option_names:
            columns = ", ".join(ROW_COLUMNS + (EDIT_COLUMNS if self.task == "edit" else ()))
            hint = (" (the file seems to separate its columns with ';': save it as comma-separated CSV)"
                    if ";" in key and "," not in key else "")
            raise ManifestError(f"{where}: unknown column {key!r}{hint}: columns are {columns} and the options of "
                                f"csdtex paint ({', '.join(sorted(self.option_names))})")
        if top in BATCH_LEVEL_OPTIONS:
            raise ManifestError(f"{where}: {top} is set for the whole batch ({BATCH_LEVEL_OPTIONS[top]}), not "
                                "per row; remove the column")

    def row(self, record: dict[str, Any], where: str, base: Path) -> AssetRow:
        for column in ("mesh", "prompt"):
            value = record.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ManifestError(f"{where} has no {column}: every row needs a mesh and a prompt")
            if not isinstance(value, str):
                raise ManifestError(f"{where}: {column} must be text, got {value!r}")
        edit_values = {column: record.get(column) for column in EDIT_COLUMNS if record.get(column) is not None}
        if self.task != "edit" and edit_values:
            raise ManifestError(f"{where}: column {next(iter(edit_values))!r} is for --task edit; remove it or use "
                                "--task edit")
        if self.task == "edit" and "source" not in edit_values:
            where_to = ("give it a source column (mesh,prompt,source), e.g. in the folder's prompts.csv"
                        if where.startswith("folder ") else "add a source column")
            raise ManifestError(f"{where} has no source: an edit row describes the texture as it is now, like "
                                f"csdtex edit --source (e.g. \"a red object\"): {where_to}")
        for column, value in edit_values.items():
            if not isinstance(value, str) or not value.strip():
                raise ManifestError(f"{where}: {column} must be text, got {value!r}")
        out = record.get("out")
        if out is not None:
            out = _checked_out(out, where)
        options = {key: value for key, value in record.items() if key not in ROW_COLUMNS + EDIT_COLUMNS}
        config, given = self._apply(options, where)
        paths = {column: self._path(edit_values[column], column, where, base)
                 for column in EDIT_PATH_COLUMNS if column in edit_values}
        return AssetRow(
            where=where, name=out or "", task=self.task, mesh=self._path(record["mesh"], "mesh", where, base),
            prompt=record["prompt"].strip(), config=config, options=given,
            source=edit_values["source"].strip() if "source" in edit_values else None,
            mask=paths.get("mask"), material=edit_values.get("material"),
        )

    def _apply(self, options: dict[str, Any], where: str) -> tuple[PaintConfig, dict[str, Any]]:
        config, given = self.config, {}
        for key, value in options.items():
            self._check_option(key, where)
            config, value = _apply_cell(config, key, value, where)
            _nest(given, key, value)
        if not config.model:
            config = dataclasses.replace(config, model=DEFAULT_MODEL)
        try:
            config.validate()
        except ConfigError as error:
            raise ManifestError(f"{where}: {error}") from None
        return config, given

    def _path(self, value: str, column: str, where: str, base: Path) -> Path:
        path = Path(os.path.expanduser(value.strip()))
        path = path if path.is_absolute() else base / path
        if not any(is_within(path, root) for root in self.allowed):
            roots = ", ".join(str(root) for root in self.allowed)
            raise ManifestError(f"{where}: {column} {value!r} is outside the allowed folders ({roots}); move it there "
                                "or allow its folder with --root")
        return path


def _apply_cell(config: PaintConfig, key: str, value: Any, where: str) -> tuple[PaintConfig, Any]:
    """``config`` with option ``key`` (dotted for nested tables) set to ``value``, checked by apply_overrides.

    A CSV cell is text: it is tried as written, then read as JSON (``"12"`` -> 12, ``"true"`` -> True), then a whole
    float as an int (``7.0`` -> 7, as pandas writes an int column with a blank cell), so the types come from
    PaintConfig's hints alone.
    """
    source = where
    try:
        return apply_overrides(config, _nest({}, key, value), source=source), value
    except ConfigError as first:
        error = first
    parsed = _json_or_none(value) if isinstance(value, str) else value
    candidates = [parsed] if isinstance(value, str) and parsed is not None else []
    if isinstance(parsed, float) and parsed.is_integer():  # pandas writes an int column with a blank cell as 7.0
        candidates.append(int(parsed))
    for candidate in candidates:
        try:
            return apply_overrides(config, _nest({}, key, candidate), source=source), candidate
        except ConfigError as later:
            if candidate is parsed:  # the JSON reading's message names the type better than the text's
                error = later
    raise ManifestError(str(error)) from None


def _json_or_none(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if not isinstance(value, str) else None


def _nest(target: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set dotted ``key`` (``"field.log2_hashmap_size"``) in ``target`` as nested dicts; returns ``target``."""
    *parents, last = key.split(".")
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last].update(value)
    else:
        node[last] = value
    return target


def _checked_out(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: out must be a folder name, got {value!r}")
    value = value.strip()
    safe = safe_asset_name(value)
    if safe != value or value.lower() in RESERVED_NAMES:
        raise ManifestError(f"{where}: out {value!r} must be a plain folder name inside the output folder (letters, "
                            f"digits, '-', '_', '.'; no '/', '..' or leading '.'), e.g. {safe!r}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Names


def assign_names(rows: list[AssetRow], roots: Sequence[Path] = ()) -> list[AssetRow]:
    """``rows`` with unique output names (see the module docstring); rows with an ``out`` keep it.

    Args:
        rows: validated rows; ``name`` is the ``out`` cell or ``""``.
        roots: the allowed roots; a mesh's parent folders are counted from the first root it is in.
    Returns:
        new rows, same order.
    Raises:
        ManifestError: two rows with the same ``out`` (derived names step around the ``out`` names).
    """
    fixed: dict[str, str] = {}
    for row in rows:
        if row.name:
            key = row.name.lower()
            if key in fixed:
                raise ManifestError(f"{row.where}: out {row.name!r} is already used by {fixed[key]}; give each row "
                                    "its own out")
            fixed[key] = row.where
    taken = set(fixed) | set(RESERVED_NAMES)
    auto = [i for i, row in enumerate(rows) if not row.name]
    parts = {i: _name_parts(rows[i].mesh, roots) for i in auto}
    depth = dict.fromkeys(auto, 0)

    def candidate(i: int) -> str:
        folders = parts[i][:-1]
        return safe_asset_name("_".join([*folders[len(folders) - depth[i]:], parts[i][-1]]))

    while True:  # one more parent folder for every colliding row that has one; each pass deepens at least one row
        groups: dict[str, list[int]] = {}
        for i in auto:
            groups.setdefault(candidate(i).lower(), []).append(i)
        grow = [i for key, members in groups.items() if key in taken or len({parts[j] for j in members}) > 1
                for i in members if depth[i] < len(parts[i]) - 1]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    names: dict[int, str] = {}
    for i in auto:  # what is still shared (the same mesh twice): -2, -3, ... in manifest order
        base = name = candidate(i)
        number = 1
        while name.lower() in taken:
            number += 1
            name = f"{base}-{number}"
        names[i] = name
        taken.add(name.lower())
    return [dataclasses.replace(row, name=row.name or names[i], named_by_out=bool(row.name))
            for i, row in enumerate(rows)]


def _name_parts(mesh: Path, roots: Sequence[Path]) -> tuple[str, ...]:
    """The mesh's folders below its root, then its stem: ``("a", "b", "chair")`` for ``<root>/a/b/chair.obj``."""
    resolved = _resolved(mesh)
    for root in roots:
        try:
            relative = resolved.relative_to(_resolved(root))
        except ValueError:
            continue
        return (*relative.parent.parts, relative.stem)
    return (*resolved.parent.parts[1:], resolved.stem)
