"""Safe image decoding: format from magic bytes, size and pixel limits before any decode."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from app.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType

# Pillow's own bomb guard is global; ours is per-request (max_pixels), so Pillow's is lifted to a
# hard ceiling and we check the header ourselves before decoding.
Image.MAX_IMAGE_PIXELS = 200_000_000


def sniff_format(data: bytes) -> str | None:
    """JPEG / PNG / WEBP from the first bytes; the client's content type and filename are not
    trusted."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


@dataclass
class ImageLimits:
    max_bytes: int
    max_pixels: int


def decode_image(data: bytes, *, name: str, limits: ImageLimits, target: int) -> Image.Image:
    """Validate and decode one upload to RGB, decoding JPEGs at reduced size when much larger than
    the model input (`target` pixels on the short side)."""
    if not data:
        raise InvalidImage(f"{name}: empty file")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"{name}: {len(data)} bytes exceeds the {limits.max_bytes}-byte limit"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedMediaType(
            f"{name}: not a JPEG, PNG or WebP image (checked from its bytes)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = im.size
            if width * height > limits.max_pixels:
                raise PayloadTooLarge(
                    f"{name}: {width}x{height} = {width * height} pixels exceeds the "
                    f"{limits.max_pixels}-pixel limit"
                )
            if getattr(im, "is_animated", False) or getattr(im, "n_frames", 1) > 1:
                raise UnsupportedMediaType(f"{name}: animated images are not accepted")
            if fmt == "JPEG":
                im.draft("RGB", (target * 2, target * 2))
            im.load()
            return im.convert("RGB")
    except (PayloadTooLarge, UnsupportedMediaType):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"{name}: decompression bomb ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"{name}: cannot decode {fmt} image ({exc})") from exc
