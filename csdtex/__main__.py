"""``python -m csdtex``: the same as the ``csdtex`` command (:func:`csdtex.entry.run`)."""

from csdtex.entry import run

if __name__ == "__main__":  # not when a spawned worker process re-imports the parent's main module
    run()
