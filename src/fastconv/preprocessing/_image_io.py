"""Image files to arrays and back (Keras 2.4's ``load_img``, ``img_to_array``,
``array_to_img``, ``save_img``), through Pillow.

Pillow is the optional extra ``image`` (``pip install 'fastconv[image]'``),
imported on the first call that reads or writes an image, never when
fastconv loads. :func:`img_to_array` needs only NumPy.

A file Pillow cannot decode (not an image, an unsupported format, a
truncated or corrupt file) raises a ValueError that names the file;
``open`` errors (missing file, no permission) pass as they are, naming it too.
"""
from __future__ import annotations

import io
import numbers
import os
import pathlib
import warnings
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .. import backend
from .._files import atomic_write
from .._optional import require

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img", "read_image",
           "COLOR_MODES", "PIL_INTERPOLATIONS", "check_data_format", "check_size"]

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
# Keras' names for Pillow's resampling filters.
PIL_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def _pil(feature: str) -> Any:
    return require("PIL.Image", "image", feature)


def check_data_format(data_format: Optional[str]) -> str:
    if data_format is None:
        return backend.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError("`data_format` must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    return data_format


def check_size(size: Any, name: str) -> Tuple[int, int]:
    """``(height, width)`` of positive ints, or a ValueError naming ``name``."""
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"`{name}` must be a tuple (height, width) of two positive ints, "
                     f"got {size!r}")


def _check_color_mode(color_mode: Any) -> str:
    if color_mode not in COLOR_MODES:
        raise ValueError(f"`color_mode` must be 'grayscale', 'rgb' or 'rgba', got "
                         f"{color_mode!r}")
    return color_mode


def _describe(path: Any) -> str:
    if isinstance(path, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(path))
    return f"<{type(path).__name__}>"


def read_image(path: Any, color_mode: str, feature: str = "load_img") -> Any:
    """A decoded Pillow image of ``path`` (a path or a binary file object) in
    ``color_mode``; decoding errors name the file."""
    Image = _pil(f"fastconv.preprocessing.image.{feature}")
    if isinstance(path, (str, bytes, os.PathLike)):
        with open(path, "rb") as handle:   # OSErrors name the file already
            data = handle.read()
        source: Any = io.BytesIO(data)
    elif hasattr(path, "read"):
        source = path
    else:
        raise TypeError(f"path should be a path or a binary file object, not "
                        f"{type(path).__name__}")
    try:
        img = Image.open(source)
        img.load()   # decode now, so that a corrupt file fails here, by name
        # Grayscale keeps 16- and 32-bit gray images as they are (Keras does).
        if color_mode == "grayscale":
            if img.mode not in ("L", "I;16", "I"):
                img = img.convert("L")
        elif color_mode == "rgba":
            if img.mode != "RGBA":
                img = img.convert("RGBA")
        elif img.mode != "RGB":
            img = img.convert("RGB")
    except Exception as exc:   # UnidentifiedImageError, truncated data, bad chunks, ...
        reason = f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ == "UnidentifiedImageError":
            reason = "Pillow does not recognise it as an image (not an image file, or a " \
                     "format Pillow cannot read)"
        raise ValueError(f"cannot read the image file {_describe(path)}: {reason}") from exc
    return img


def load_img(path: Any, grayscale: bool = False, color_mode: str = "rgb",
             target_size: Optional[Sequence[int]] = None, interpolation: str = "nearest",
             keep_aspect_ratio: bool = False) -> Any:
    """An image file as a Pillow image, as ``keras.preprocessing.image.load_img``.

    Parameters
    ----------
    path : str, path-like or binary file object
    grayscale : bool
        Deprecated (Keras 2.4 warns too): ``color_mode='grayscale'``.
    color_mode : {'rgb', 'rgba', 'grayscale'}
    target_size : (height, width), optional
        Resize to this with Pillow's ``interpolation`` filter ('nearest',
        'bilinear', 'bicubic', 'hamming', 'box', 'lanczos').
    keep_aspect_ratio : bool
        Resize the largest centred crop of the target's aspect ratio (later
        Keras versions' option; False is Keras 2.4's behaviour).
    """
    if grayscale is True:
        warnings.warn('grayscale is deprecated. Please use color_mode = "grayscale"',
                      DeprecationWarning, stacklevel=2)
        color_mode = "grayscale"
    color_mode = _check_color_mode(color_mode)
    size = None if target_size is None else check_size(target_size, "target_size")
    if size is not None and interpolation not in PIL_INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {', '.join(PIL_INTERPOLATIONS)}, "
                         f"got {interpolation!r}")
    img = read_image(path, color_mode)
    if size is None:
        return img
    width_height = (size[1], size[0])
    if img.size == width_height:
        return img
    Image = _pil("fastconv.preprocessing.image.load_img")
    resampling = getattr(Image, "Resampling", Image)
    resample = getattr(resampling, interpolation.upper())
    if not keep_aspect_ratio:
        return img.resize(width_height, resample)
    width, height = img.size
    crop_height = min(height, (width * size[0]) // size[1])
    crop_width = min(width, (height * size[1]) // size[0])
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return img.resize(width_height, resample,
                      box=(left, top, left + crop_width, top + crop_height))


def img_to_array(img: Any, data_format: Optional[str] = None, dtype: Any = None) -> np.ndarray:
    """A Pillow image (or anything ``np.asarray`` takes) as a 3-D array
    ``(height, width, channels)`` (or channels first), ``float32`` by default."""
    data_format = check_data_format(data_format)
    x = np.asarray(img, dtype=backend.floatx() if dtype is None else dtype)
    if x.ndim == 2:
        x = x[:, :, None] if data_format == "channels_last" else x[None]
    elif x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    else:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


def array_to_img(x: Any, data_format: Optional[str] = None, scale: bool = True,
                 dtype: Any = None) -> Any:
    """A 3-D array as a Pillow image (1, 3 or 4 channels), as Keras'.

    With ``scale`` the values are mapped linearly onto 0..255 (min to 0, max
    to 255) first; without, they are cast to ``uint8`` as they are.
    """
    data_format = check_data_format(data_format)
    x = np.array(x, dtype=backend.floatx() if dtype is None else dtype)
    if x.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). Got array "
                         f"with shape: {x.shape}")
    Image = _pil("fastconv.preprocessing.image.array_to_img")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return Image.fromarray(x.astype("uint8"), "RGBA")
    if channels == 3:
        return Image.fromarray(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:   # 32-bit signed integer grayscale, Pillow's mode "I"
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def save_img(path: Any, x: Any, data_format: Optional[str] = None,
             file_format: Optional[str] = None, scale: bool = True, **kwargs: Any) -> None:
    """Write an image array to ``path`` (a path, written atomically, or a
    binary file object), as ``keras.preprocessing.image.save_img``.

    ``file_format`` defaults to the path's extension ('jpg' means JPEG); an
    RGBA image saved as JPEG is converted to RGB with a warning, as Keras does.
    ``kwargs`` go to Pillow's ``Image.save``.
    """
    is_path = isinstance(path, (str, bytes, os.PathLike))
    if file_format is None and is_path:
        file_format = pathlib.Path(os.fsdecode(path)).suffix[1:].lower() or None
    if file_format is None:
        raise ValueError("`file_format` is needed: the path has no extension, or a file "
                         "object was given")
    file_format = str(file_format).lower()
    if file_format == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    Image = _pil("fastconv.preprocessing.image.save_img")
    Image.init()
    if file_format.upper() not in Image.SAVE:
        raise ValueError(f"`file_format` {file_format!r} is not a format Pillow can write "
                         f"(e.g. 'png', 'jpeg', 'bmp')")
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.",
                      stacklevel=2)
        img = img.convert("RGB")
    if not is_path:
        img.save(path, format=file_format, **kwargs)
        return
    with atomic_write(path) as handle:
        img.save(handle, format=file_format, **kwargs)
