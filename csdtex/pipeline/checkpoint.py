"""Resumable checkpoints: tensors in safetensors (never pickle), metadata in JSON, both written atomically.

A checkpoint records the *identity* of the run that made it: the prompt, the mesh (:func:`mesh_fingerprint` of its
vertices, faces and UVs), the texture model's kind and every resolved option that changes the result (method,
negative prompt, schedules, learning rate, cameras, seed, steps, field, ...). ``--resume`` refuses a checkpoint
whose identity differs and names what differs. Options that do not change the optimized texture model (device,
renderer, preview and checkpoint settings, baked texture size) may change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csdtex import __version__
from csdtex.config import PaintConfig, to_dict
from csdtex.errors import ConfigError, one_line
from csdtex.fileio import write_bytes_atomic, write_text_atomic
from csdtex.guidance.scores import GuidanceConfig

CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"

# Options that do not change the optimized texture model.
_NOT_IDENTITY = ("checkpoint_every", "metrics_every", "preview_frames", "preview_size", "device", "renderer",
                 "texture_size", "overwrite", "low_vram", "compile_encoder")


def mesh_fingerprint(mesh) -> str:
    """SHA-256 (hex) of a :class:`csdtex.mesh.Mesh`'s vertices, faces, UVs, UV faces and face materials (float64 /
    int64 bytes): what the optimized field is tied to. A checkpoint of another mesh, or of this one unwrapped another
    way, does not match."""
    digest = hashlib.sha256()
    for array in (mesh.vertices, mesh.faces, mesh.uvs, mesh.uv_faces, mesh.face_materials):
        digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def has_checkpoint(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a checkpoint (its tensors file, which carries its own step and identity)."""
    return (Path(out_dir) / CHECKPOINT_TENSORS).exists()


def _saved_metadata(out_dir: Path) -> dict[str, Any]:
    """The step and identity a checkpoint's tensors file was saved with (``{"step": int, "identity": dict}``), read
    from its safetensors header; for checkpoints of older csdtex versions, from ``checkpoint.json``. Raises OSError /
    ValueError / KeyError for an unreadable one."""
    from safetensors import safe_open

    with safe_open(str(Path(out_dir) / CHECKPOINT_TENSORS), framework="pt") as handle:
        header = handle.metadata() or {}
    if "step" in header and "identity" in header:
        return {"step": int(header["step"]), "identity": json.loads(header["identity"]),
                "tensors_sha256": header.get("tensors_sha256")}
    meta = json.loads((Path(out_dir) / CHECKPOINT_META).read_text(encoding="utf-8"))
    return {"step": int(meta["step"]), "identity": meta.get("identity", {})}


def checkpoint_step(out_dir: Path) -> int | None:
    """The step of the checkpoint in ``out_dir``, or None when there is none or it is unreadable."""
    try:
        return _saved_metadata(out_dir)["step"]
    except Exception:  # noqa: BLE001 - any unreadable checkpoint counts as none here
        return None


def checkpoint_differences(out_dir: Path, identity: dict[str, Any]) -> list[str] | None:
    """The keys of ``identity`` (:func:`checkpoint_identity`, possibly partial) whose value differs in the checkpoint
    in ``out_dir``, in ``identity``'s order; None when there is no readable checkpoint."""
    try:
        saved = _saved_metadata(out_dir)["identity"]
    except Exception:  # noqa: BLE001 - an unreadable checkpoint has no identity to compare
        return None
    saved = saved if isinstance(saved, dict) else {}
    return [key for key, value in identity.items() if key in saved and saved[key] != value]


def checkpoint_identity(prompt: str, config: PaintConfig, guidance: GuidanceConfig | None, texture_model: str,
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flat ``{"option.path": value}`` of everything that must match for a resume: the prompt, the texture model's
    class name, every result-changing option of the resolved ``config`` and ``guidance``, and ``extra`` (e.g. an
    edit's source texture hashes)."""
    record = to_dict(config, guidance)
    for name in _NOT_IDENTITY:
        record.pop(name, None)
    identity = {"prompt": prompt, "texture_model": texture_model, **_flatten(record), **(extra or {})}
    return json.loads(json.dumps(identity, default=str))  # the form it takes after a JSON round trip


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def save_checkpoint(out_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, step: int, identity: dict[str, Any]) -> None:
    """Write the model, the Adam moments, the generator state and ``step`` (steps done) with ``identity``."""
    from safetensors.torch import save

    tensors = {f"field.{key}": value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    for index, parameter in enumerate(model.parameters()):
        state = optimizer.state.get(parameter, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"adam.{index}.{key}"] = state[key].detach().cpu().contiguous()
        if "step" in state:
            tensors[f"adam.{index}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    tensors["rng"] = generator.get_state()
    # The step and identity travel inside the tensors file, which one rename puts in place: an interrupt between it
    # and checkpoint.json (a readable summary) cannot pair one step's state with another step's count. The checksum
    # of the tensors' bytes lets a resume tell a damaged file from a good one.
    header = {"step": str(step), "identity": json.dumps(identity), "csdtex": __version__,
              "tensors_sha256": _tensors_digest(tensors)}
    meta = {"step": step, "identity": identity, "csdtex": __version__}
    try:
        write_bytes_atomic(Path(out_dir) / CHECKPOINT_TENSORS, save(tensors, metadata=header))  # usual permissions
        write_text_atomic(Path(out_dir) / CHECKPOINT_META, json.dumps(meta, indent=2))
    except OSError as error:  # a full disk, a folder gone: one line with the remedy
        raise ConfigError(f"cannot write the checkpoint in {out_dir} ({error.strerror or type(error).__name__}): "
                          "free some space, or set checkpoint_every = 0 (no checkpoints)") from None


def _tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the bytes of every tensor, in key order (what a checkpoint's header records)."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode("utf-8"))
        digest.update(tensors[key].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint(out_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, identity: dict[str, Any], total_steps: int) -> int:
    """Restore a checkpoint into ``model``, ``optimizer`` and ``generator``; returns the steps already done.

    Raises:
        ConfigError: no or unreadable checkpoint, another identity (the differing options are named), or a step
            count not below ``total_steps``.
    """
    out_dir = Path(out_dir)
    tensor_path = out_dir / CHECKPOINT_TENSORS
    if not tensor_path.exists():
        raise ConfigError(f"--resume: no checkpoint in {out_dir}; run without --resume to start from scratch")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def unreadable(reason: object) -> ConfigError:
        return ConfigError(f"--resume: the checkpoint in {out_dir} is unreadable ({reason}); delete it and start again")

    try:
        meta = _saved_metadata(out_dir)
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as error:
        raise unreadable(error) from None
    if meta.get("tensors_sha256") not in (None, _tensors_digest(tensors)):
        raise unreadable("its data does not match its checksum: the file was damaged")
    saved = meta.get("identity", {}) if isinstance(meta.get("identity"), dict) else {}
    if saved != identity:
        keys = list(identity) + [k for k in saved if k not in identity]  # the prompt first, then options in order
        differing = [k for k in keys if saved.get(k) != identity.get(k)]
        shown = ", ".join(differing[:6]) + (f" and {len(differing) - 6} more" if len(differing) > 6 else "")
        raise ConfigError(f"--resume: the checkpoint in {out_dir} was made with other settings (not the same: "
                          f"{shown}); use the same settings or another --out")
    step = int(meta["step"])
    if step < 0:
        raise unreadable(f"step {step}")
    if step >= total_steps:
        raise ConfigError(f"--resume: the checkpoint is at step {step}, not below --steps {total_steps}; raise --steps")
    if any(value.is_floating_point() and not bool(torch.isfinite(value).all()) for value in tensors.values()):
        raise unreadable("it holds NaN or infinite values")
    device = next(model.parameters()).device
    try:
        model.load_state_dict({k[len("field."):]: v.to(device) for k, v in tensors.items() if k.startswith("field.")})
        states = {}
        for index, parameter in enumerate(model.parameters()):
            if f"adam.{index}.exp_avg" in tensors:
                states[parameter] = {
                    "step": tensors[f"adam.{index}.step"].reshape(()).clone(),
                    "exp_avg": tensors[f"adam.{index}.exp_avg"].to(device),
                    "exp_avg_sq": tensors[f"adam.{index}.exp_avg_sq"].to(device),
                }
        generator.set_state(tensors["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:  # a tensor missing or of another shape
        raise unreadable(f"{type(error).__name__}: {one_line(error)}") from None
    optimizer.state.update(states)
    return step


def remove_checkpoint(out_dir: Path) -> None:
    """Delete the checkpoint files of ``out_dir`` (after the outputs are written)."""
    for name in (CHECKPOINT_TENSORS, CHECKPOINT_META):
        (Path(out_dir) / name).unlink(missing_ok=True)
