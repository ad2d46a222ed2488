"""``python -m csdtex``: the same as the ``csdtex`` command (:func:`csdtex.entry.run`)."""

from csdtex.entry import run

run()
