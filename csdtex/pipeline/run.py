"""The state shared by the stages of one run: what ``prepare_run`` resolved, and per-phase timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import torch

from csdtex.config import PaintConfig
from csdtex.coverage import CoverageSampler
from csdtex.devices import gpu_memory_budget_gib
from csdtex.guidance.priors import MemoryPlan, memory_plan
from csdtex.guidance.prompts import PromptEmbeddings
from csdtex.guidance.scores import GuidanceConfig
from csdtex.mesh import Mesh, RenderMesh
from csdtex.render import CandidateBudget

T = TypeVar("T")


@dataclass
class PhaseTimer:
    """Wall-clock seconds per named phase (``load_mesh``, ``load_prior``, ``optimize``, ``bake``, ...)."""

    timings: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, function: Callable[..., T], *args, **kwargs) -> T:
        """Call ``function(*args, **kwargs)`` and add its wall time to phase ``name`` (also when it raises)."""
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)


@dataclass
class PreparedRun:
    """Everything the optimize and finalize stages need, resolved once by :func:`~csdtex.pipeline.prepare.prepare_run`.

    Attributes:
        name: file-name stem of the outputs (from the mesh file name, made safe).
        prompt: the stripped prompt (for an edit: the target description).
        out_dir: the output folder (checked writable; created by the first write).
        config: the options with every preset value filled in (no None left except ``model`` for a given prior).
        guidance: the complete score-distillation options (preset + schedule overrides + top-level options).
        prior: the loaded frozen prior (:class:`csdtex.guidance.priors.Prior`).
        device: where the prior, the mesh and the texture model live.
        backend: the resolved rasterizer backend name (``csdtex.render.BACKENDS`` without ``auto``).
        mesh: the mesh as it is exported: the input's vertices, faces and UVs (unwrapped only when it had none or
            ``config.unwrap``).
        render_mesh: ``mesh`` normalized into the unit sphere on ``device`` (rendering only).
        embeddings: the prompt, empty and negative text embeddings, encoded once.
        timings: per-phase wall time so far; later stages add to it.
        replaced_outputs: earlier outputs in ``out_dir`` this run replaces, file name -> (inode, mtime_ns)
            (:func:`csdtex.pipeline.outputs.claim_output_folder`); removed after ``run.json`` is written.
        notes: one-line facts about the input that ``run.json`` records under ``"input_notes"`` (e.g. a dropped
            ``KHR_texture_transform``, vertex colours not carried over).
        candidate_budget: the torch rasterizer's candidate budget for the step renders (same mesh, size and batch
            every step), which keeps them at one host synchronization each on CUDA; None on the CPU, where reading
            the exact number costs nothing (see :class:`csdtex.render.CandidateBudget`).
        camera_sampler: with ``config.camera_sampling == "coverage"``, the sampler that draws the step cameras
            (:class:`csdtex.coverage.CoverageSampler`, built once by ``prepare_run``); None = uniform in
            ``config.cameras`` (:func:`csdtex.cameras.sample_cameras`).
    """

    name: str
    prompt: str
    out_dir: Path
    config: PaintConfig
    guidance: GuidanceConfig
    prior: object
    device: torch.device
    backend: str
    mesh: Mesh
    render_mesh: RenderMesh
    embeddings: PromptEmbeddings
    timings: PhaseTimer
    replaced_outputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    candidate_budget: CandidateBudget | None = None
    camera_sampler: CoverageSampler | None = None

    @property
    def plan(self) -> MemoryPlan:
        """How the prior's networks run in this run's steps (:func:`csdtex.guidance.priors.memory_plan` of
        ``config.low_vram``, ``config.compile_encoder`` and the device's memory budget)."""
        return memory_plan(self.config.low_vram, self.config.compile_encoder, gpu_memory_budget_gib(self.device))
