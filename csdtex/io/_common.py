"""Helpers shared by the mesh file formats (:mod:`csdtex.io.obj`, :mod:`csdtex.io.gltf`,
:mod:`csdtex.io.trimesh_formats`).

This module must not import :mod:`csdtex.mesh` (see :mod:`csdtex.io` for the import order).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from typing import Iterator

import numpy as np

from csdtex.errors import one_line

GENERATOR = "csdtex"
"""Written into exported files (OBJ/MTL header comments, glTF ``asset.generator``)."""


class ParseError(Exception):
    """A malformed mesh file (the message says where, e.g. which line).

    :func:`csdtex.io.load_mesh` reports it as "mesh file '...' is not a valid <format> file (<message>)".
    """


class ReadError(Exception):
    """A reader failed for a reason it knows better than the exception it caught (e.g. a glTF buffer outside the
    mesh folder); :func:`csdtex.io.load_mesh` reports it as "mesh file '...' could not be read as <format>
    (<message>): <remedy>", with ``remedy`` (what to do, e.g. an install command) when the reader knows one, else the
    generic "check that it is a valid <format> file or re-export it".
    """

    def __init__(self, message: str, remedy: str | None = None) -> None:
        super().__init__(message)
        self.remedy = remedy


def error_text(err: BaseException) -> str:
    """``'<ExceptionType>: <first line of the message, at most 160 characters>'`` (only the type name when the message
    is empty), for embedding a caught library exception into a one-line :class:`~csdtex.errors.MeshError`."""
    return f"{type(err).__name__}: {one_line(err, 160)}" if str(err).strip() else type(err).__name__


def clean_relative(name: str) -> str:
    """A file reference from a mesh asset as a relative POSIX-style string (quotes stripped, backslashes -> '/')."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1]
    return name.replace("\\", "/")


_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
"""Pillow modes of greyscale images deeper than 8 bits."""


def image_to_rgb8(image) -> np.ndarray:
    """A PIL image as uint8 [H, W, 3] RGB, row 0 = top; alpha dropped, 16-bit / float greyscale rescaled."""
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        # "I;16*" is 16-bit whatever its values (a dark texture of values <= 255 is near-black, not 8-bit grey);
        # "I" (32-bit, also what older Pillows make of 16-bit PNGs) is judged by its values
        top = 65535.0 if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255) else 255.0
        if image.mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def image_to_grey8(image) -> np.ndarray:
    """A PIL image as uint8 [H, W] luminance, row 0 = top; 16-bit / float greyscale rescaled like
    :func:`image_to_rgb8` (Pillow's ``convert("L")`` would clip 16-bit values to white)."""
    if image.mode in _HIGH_DEPTH_MODES:
        return np.ascontiguousarray(image_to_rgb8(image)[..., 0])
    return np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))


def map_image_bytes(data: bytes) -> tuple[bytes, str]:
    """An image file's bytes as a carried map takes them, ``(bytes, MIME type)``: PNG and JPEG as they are (16-bit
    PNGs included), anything else Pillow decodes (WebP, ...) re-encoded as PNG. Raises what Pillow raises for bytes it
    cannot decode."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data, "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return data, "image/jpeg"
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"


def png_bit_depth(data: bytes) -> int | None:
    """The bit depth per channel a PNG file's header declares (1, 2, 4, 8 or 16), or None for other data. Pillow
    reads 16-bit colour PNGs as 8-bit RGB without saying so; callers use this to say it."""
    if len(data) >= 25 and data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return data[24]
    return None


def sixteen_bit_note(what: str, image, header: bytes) -> str | None:
    """The warning for a 16-bit-per-channel colour texture (csdtex keeps 8 bits), or None. ``what`` names the
    texture (``"texture 'skin.png'"``); ``header``: the file's first bytes (at least 25)."""
    if png_bit_depth(header) == 16 and image.mode in ("RGB", "RGBA", *_HIGH_DEPTH_MODES):
        return (f"{what} has 16 bits per channel; csdtex reads and writes 8, so the outputs (an edit's untouched "
                "texels too) hold its 8-bit version")
    return None


def image_alpha8(image) -> np.ndarray | None:
    """A PIL image's transparency as uint8 [H, W] (255 = opaque), or None when it has none: its alpha band (RGBA,
    LA, ...), else a PNG ``tRNS`` transparency (palette images from pngquant / GIMP's indexed export, a colour key in
    L / RGB images), which Pillow keeps in ``image.info`` rather than in a band."""
    if "A" in image.getbands():
        return np.ascontiguousarray(np.asarray(image.getchannel("A"), dtype=np.uint8))
    if "transparency" in image.info:
        return np.ascontiguousarray(np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.uint8))
    return None


_NOISY_LOGGERS = ("trimesh", "DracoPy", "PIL", "meshopt")


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence mesh libraries while loading: their Python warnings, their loggers (``trimesh``, ``DracoPy``, ``PIL``,
    ``meshopt``), Python-level prints and native (C/C++) output on file descriptors 1 and 2.

    Everything is restored on exit, exceptions included, so nothing process-wide is left changed (file descriptors
    are redirected only for the duration of the block; do not print from other threads meanwhile).
    """
    saved_levels = []
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved_levels.append((logger, logger.level))
        logger.setLevel(logging.CRITICAL + 1)
    saved_fds: list[tuple[int, int]] = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            try:
                for stream in (sys.__stdout__, sys.__stderr__):
                    if stream is not None:
                        stream.flush()
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    for fd in (1, 2):
                        saved_fds.append((fd, os.dup(fd)))
                        os.dup2(devnull, fd)
                finally:
                    os.close(devnull)
            except (OSError, ValueError):  # no usable file descriptors (embedded interpreters): Python-level only
                pass
            yield
        finally:
            for fd, copy in reversed(saved_fds):
                os.dup2(copy, fd)
                os.close(copy)
            for logger, level in saved_levels:
                logger.setLevel(level)
