"""A texturing run in three stages that paint, edit, the seam benchmark and batch runs compose.

- :func:`~csdtex.pipeline.prepare.prepare_run`: load the mesh and the prior, resolve the options against the
  prior's preset, unwrap UVs when needed, encode the prompts once -> :class:`~csdtex.pipeline.run.PreparedRun`.
- :func:`~csdtex.pipeline.optimize.optimize`: optimize any :class:`~csdtex.field.TextureModel` against any
  :class:`~csdtex.pipeline.objectives.Objective` (random views, checkpoints, progress callback).
- :func:`~csdtex.pipeline.finalize.finalize`: bake into the mesh's UV layout, export, preview, ``run.json``.

:func:`csdtex.paint` is ``prepare_run`` + an :class:`~csdtex.field.ImplicitTextureField` + a
:class:`~csdtex.pipeline.objectives.ScoreObjective` + ``optimize`` + ``finalize``. Importing this package imports
none of the stages (and so neither diffusers nor trimesh).
"""
