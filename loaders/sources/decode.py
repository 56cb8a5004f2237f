"""Bytes to RGB uint8 with Pillow: the reference decoding of the `torch` backend (and the FFCV writer).

Every mode becomes RGB the same way: palette and grey through Pillow's `convert("RGB")`, alpha
dropped (composited on black, as `convert` does), CMYK through Pillow's CMYK->RGB, 16-bit grey
scaled to 8 bits. The output geometry without random crops is the centre square of side
min(H, W), resized to `image_size` (bilinear, antialiased): tiny and elongated images still give
`image_size` squares.
"""
from __future__ import annotations

import numpy as np


def load_rgb(path: str):
    """A Pillow RGB image of `path`, whatever its mode."""
    from PIL import Image
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        return im.convert("RGB")


# Pillow modes (as the scan records them, "MODE FORMAT") that other decoders turn into different
# RGB than `load_rgb`: 16- and 32-bit grey, which DALI scales by the type's range where the
# reference scales by the image's peak (a 16-bit PNG holding 8-bit values: 99 grey levels apart).
# Backends decode such files with `load_rgb` instead.
_OTHER_DECODERS_DIFFER = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def needs_reference(mode: str) -> bool:
    return mode.split(" ")[0] in _OTHER_DECODERS_DIFFER


def center_square(im):
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def center_resized(im, image_size: int) -> np.ndarray:
    """Centre square resized to `image_size`: HWC uint8."""
    from PIL import Image
    sq = center_square(im)
    if sq.size != (image_size, image_size):
        sq = sq.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(sq, dtype=np.uint8)
