"""Image processor saved with every mlic_hf checkpoint, and robust conversion of any image to 8-bit RGB.

Image files and ``http(s)://`` URLs are read by :func:`load_image` (a failed download names the URL). The processor's
``size`` is at most :data:`~mlic_hf.configuration_utils.MAX_IMAGE_SIZE` pixels a side, checked when it is built
(``preprocessor_config.json``) and before each resize, so a tampered size fails before allocating the resized image.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import ChannelDimension, PILImageResampling

from .configuration_utils import check_image_size

URL_PREFIXES = ("http://", "https://")


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map an integer or float array to uint8 by its dtype's range (floats: [0, 1] unless they exceed it)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if array.min(initial=0) < 0:
            raise ValueError(f"image: signed integer pixels below 0 are not supported (dtype {array.dtype})")
        if array.dtype == np.uint16:
            top = 65535.0
        else:  # e.g. int32 from PIL mode "I": guess 8- or 16-bit data from the values
            peak = float(array.max(initial=0))
            top = 255.0 if peak <= 255 else (65535.0 if peak <= 65535 else peak)
        return np.round(array.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image: float pixels contain NaN or inf")
        top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        return np.round(np.clip(array.astype(np.float64) / top, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"image: unsupported pixel dtype {array.dtype}")


def to_rgb_array(image: Any) -> np.ndarray:
    """Convert a PIL image, numpy array or torch tensor to an ``(H, W, 3)`` uint8 RGB array.

    Grayscale, palette, RGBA/LA (alpha composited on white), CMYK, YCbCr, 1-bit, 16-bit (``I;16``, ``I``) and
    float (``F``) images are converted, not rejected; 16-bit and float data are rescaled by their range instead of
    being clipped at 255. Arrays may be ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with C in {1, 3, 4}.
    """
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        mode = image.mode
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return to_rgb_array(np.asarray(image))
        return np.asarray(image.convert("RGB"))
    if type(image).__module__.startswith("torch"):
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.ndim != 3:
        raise ValueError(f"image: expected a 2-D or 3-D array, got shape {array.shape}")
    if array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected 1, 3 or 4 channels, got shape {array.shape}")
    array = _scale_to_uint8(array)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:  # RGBA: composite on white
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        array = np.round(array[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(array)


def to_rgb_pil(image: Any) -> Image.Image:
    """Like :func:`to_rgb_array` but returns a PIL image; 8-bit RGB/L/P/CMYK/YCbCr images take PIL's fast path."""
    if isinstance(image, Image.Image) and (
        image.mode in ("RGB", "L", "CMYK", "YCbCr", "1") or (image.mode == "P" and "transparency" not in image.info)
    ):
        if image.getexif():
            image = ImageOps.exif_transpose(image)
        return image if image.mode == "RGB" else image.convert("RGB")
    return Image.fromarray(to_rgb_array(image))


def is_url(path: Any) -> bool:
    """Whether ``path`` is an ``http(s)://`` URL string."""
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def download(url: str, timeout: float | None = None) -> bytes:
    """The content at ``url``; an ``OSError`` naming the URL when it cannot be fetched (offline, refused, HTTP
    error). The standard library's reader: no HTTP client is a dependency of mlic_hf's own."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout if timeout is not None else 30.0) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise OSError(f"could not download image {url!r}: {' '.join(str(reason).split()) or type(err).__name__} "
                      "(offline? download it and pass the file)") from err


def load_image(path: str | os.PathLike, timeout: float | None = None) -> Image.Image:
    """Open an image file or ``http(s)://`` URL as 8-bit RGB (any mode, including 16-bit), with a clear error for
    non-images and failed downloads."""
    path = os.fspath(path)
    if is_url(path):
        source: Any = io.BytesIO(download(path, timeout))
    elif not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path!r}")
    else:
        source = path
    try:
        # PIL only warns between its pixel limit and twice that: refuse those images too (decoding them can
        # exhaust memory), with one error whatever the size.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                return Image.fromarray(to_rgb_array(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(_decompression_bomb_message(path, err)) from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        what = "URL" if is_url(path) else "file"
        raise ValueError(f"{path!r} is not a readable image {what} ({err})") from err


def _decompression_bomb_message(path: str, err: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(err))
    pixels = found.group(1) if found else "too many"
    return (f"{path!r} has {pixels} pixels, more than PIL's decompression-bomb limit {Image.MAX_IMAGE_PIXELS}; "
            "if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS")


#: The keys of a processor's ``size`` that are sides in pixels (``min_pixels``/``max_pixels`` are areas).
_SIDE_KEYS = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")


def _check_size(size: Any, source: str) -> None:
    """``ValueError`` (via :func:`~mlic_hf.configuration_utils.check_image_size`) naming ``source`` and the key for
    any side of ``size`` (a dict, transformers' ``SizeDict`` or an int) outside ``[1, MAX_IMAGE_SIZE]``."""
    if size is None:
        return
    if isinstance(size, (int, float)):
        check_image_size(size, source)
        return
    items = size.items() if isinstance(size, dict) else vars(size).items() if hasattr(size, "__dict__") else ()
    for key, value in items:
        if key in _SIDE_KEYS and value is not None:
            check_image_size(value, f"{source}[{key!r}]")


class MLICImageProcessor(PilBackend):
    r"""Image processor of the mlic_hf models: any image → 8-bit RGB → square resize → rescale → normalise.

    Saved next to every checkpoint (``preprocessor_config.json``) so that
    ``pipeline("image-classification", model=DIR)`` works from the directory alone.
    Build one for a model config with :meth:`from_model_config`.
    """

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = [0.485, 0.456, 0.406]
    image_std = [0.229, 0.224, 0.225]
    size = {"height": 448, "width": 448}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        """transformers' ``to_json_file`` (which ``save_pretrained`` calls), replacing ``preprocessor_config.json``
        atomically: saved over a checkpoint and killed mid-write, it would no longer load."""
        from .file_utils import atomic_write_text

        atomic_write_text(json_file_path, self.to_json_string())

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_size(self.size, "preprocessor size")

    def resize(self, image: np.ndarray, size, *args, **kwargs) -> np.ndarray:
        # also a size given at call time: checked before the resized image is allocated
        _check_size(size, "image processor size")
        return super().resize(image, size, *args, **kwargs)

    def _prepare_images_structure(self, images, expected_ndims: int = 3):
        # Convert every image first, so 2-D (grayscale) arrays and 16-bit data are not misread as batches/clipped.
        if isinstance(images, (list, tuple)):
            images = [to_rgb_array(image) for image in images]
        elif not isinstance(images, Image.Image) and getattr(images, "ndim", 0) == 4:
            images = [to_rgb_array(image) for image in images]
        else:
            images = [to_rgb_array(images)]
        return super()._prepare_images_structure(images, expected_ndims=expected_ndims)

    def process_image(self, image, do_convert_rgb=None, input_data_format=None, **kwargs) -> np.ndarray:
        # Our own conversion handles 16-bit, float, alpha and CMYK data; then hand a HWC uint8 RGB array on.
        return super().process_image(
            to_rgb_array(image), do_convert_rgb=False, input_data_format=ChannelDimension.LAST, **kwargs
        )

    @classmethod
    def from_model_config(cls, config) -> "MLICImageProcessor":
        """The processor matching a model config's ``image_size``, ``image_mean`` and ``image_std``."""
        kwargs: dict[str, Any] = {"size": {"height": config.image_size, "width": config.image_size}}
        if config.image_mean is not None:
            kwargs["image_mean"] = list(config.image_mean)
        if config.image_std is not None:
            kwargs["image_std"] = list(config.image_std)
        return cls(**kwargs)
