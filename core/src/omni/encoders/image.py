"""Load an image item into an RGB `PIL.Image.Image`."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from omni.encoders.sources import MediaContext, MediaItem, read_source


def load_image(item: MediaItem | Image.Image, *, context: MediaContext | None = None) -> Image.Image:
    """The image `item` names, as an RGB PIL image with its EXIF orientation applied.

    Transparent pixels are composited on white (as the Qwen and LLaVA pipelines do), not dropped to
    black. Raises `DataError` naming the row and the item when it is missing or not an image.
    """
    if isinstance(item, Image.Image):
        return to_rgb(item)
    blob = read_source(item, "image", context)
    try:
        with Image.open(io.BytesIO(blob.data)) as opened:
            opened.load()
            return to_rgb(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise (context or MediaContext()).error("image", blob.name, f"is not a readable image ({exc})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` in RGB mode; transparency becomes a white background."""
    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
