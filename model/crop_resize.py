"""timm's eval resize + centre crop, resampled over the crop only.

timm's eval transform resizes the whole image so its short side is `crop / crop_pct`, then
keeps the centre `crop` x `crop`: for a 2:3 poster, 40 % of the resized pixels are computed and
thrown away, and for a 16:9 still at 600 px more than half. Pillow can resample just the source
region that the crop keeps (`Image.resize(box=...)`), with the same filter at the same scale and
the same sample positions, for 1.2-2.3x less work on posters and stills larger than the input
(`bench.resize`, docs/PERFORMANCE.md section 3); on a GPU machine this CPU step was a third of a
movie's ingest time. Not bit for bit: Pillow takes the box in single precision, which moves the
samples by about 1e-5 px. On the dev posters 3 % of the pixels change, most by one level, and
Lite0's features by at most 2-3 % (relative L2; median 0), where re-saving the poster as a
quality-90 JPEG moves them by 9 % at the median.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Resize

Transform = Callable[[Image.Image], Image.Image]

_PIL_FILTERS = {
    InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
    InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
}


@dataclass(frozen=True)
class CropResize:
    short_side: int  # torchvision Resize(short_side): the short side after resizing
    crop: int  # then CenterCrop(crop), square
    resample: Image.Resampling
    whole: Transform  # the two transforms as they are: for images the box path does not cover

    @classmethod
    def from_transforms(cls, transforms: Sequence[object], whole: Transform) -> CropResize | None:
        """For exactly [Resize(short side), CenterCrop(square)] with an antialiasing filter that
        Pillow resamples over a box; None for anything else (squash or border crop modes, a
        crop larger than the resized image, nearest-neighbour), which keeps `whole`."""
        if len(transforms) != 2:
            return None
        resize, crop = transforms
        if not (isinstance(resize, Resize) and isinstance(crop, CenterCrop)):
            return None
        if type(resize) is not Resize or type(crop) is not CenterCrop:  # a subclass's own way
            return None
        size = resize.size
        if isinstance(size, Sequence):
            if len(size) != 1:  # (h, w): a squash, no aspect ratio kept
                return None
            size = size[0]
        height, width = crop.size
        resample = _PIL_FILTERS.get(resize.interpolation)
        if resize.max_size is not None or resample is None or height != width or size < width:
            return None
        return cls(short_side=int(size), crop=int(width), resample=resample, whole=whole)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        # torchvision's sizes and offsets, to the pixel (functional.resize, center_crop)
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.short_side * long / short)
        new_w, new_h = (
            (self.short_side, new_long) if width <= height else (new_long, self.short_side)
        )
        if new_w > width or new_h > height:
            # enlarging: Pillow places a box's samples differently from a whole-image resize
            return self.whole(image)
        top = int(round((new_h - self.crop) / 2.0))
        left = int(round((new_w - self.crop) / 2.0))
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + self.crop) * sx, (top + self.crop) * sy)
        return image.resize((self.crop, self.crop), self.resample, box=box)


def resize_and_crop(eval_transform) -> Transform:
    """timm's eval transform (a Compose ending in to-tensor and normalise) up to its crop: the
    CPU half that runs where an image arrives, as a CropResize wherever one applies."""
    whole = type(eval_transform)(eval_transform.transforms[:-2])
    return CropResize.from_transforms(whole.transforms, whole) or whole
