"""``image_dataset_from_directory``: a :class:`fastconv.data.Dataset` of
image batches from a folder of class subfolders, as
``tf.keras.preprocessing.image_dataset_from_directory`` (TF 2.4, with the
``crop_to_aspect_ratio`` and ``subset='both'`` of later versions).

Indexing follows Keras' ``dataset_utils.index_directory`` (see
:mod:`._directory`): classes are the non-hidden subdirectories sorted as
strings (or ``class_names``, a subset in the given order), files listed
class by class in sorted walk order, then shuffled all at once with
``np.random.RandomState(seed)`` (file paths and labels alike), so
``file_paths`` equal Keras'. The last ``validation_split`` of the files is
the validation subset.

Each iteration then shuffles the (path, label) pairs in a buffer of 8
batches (TF's ``dataset.shuffle(batch_size * 8, seed)``, reshuffled every
epoch; the order is fastconv's own, not TF's random stream), decodes the
files with Pillow (in a few threads, in order), resizes them with
:func:`fastconv._image.resize` (``tf.image.resize``: float32, no
antialiasing) and batches them.
"""
from __future__ import annotations

import numbers
import os
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _image
from ..data import AUTOTUNE, Dataset
from . import _directory
from ._image_io import COLOR_MODES, check_data_format, check_size, read_image

__all__ = ["image_dataset_from_directory", "ALLOWLIST_FORMATS"]

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_TF_ONLY_METHODS = ("lanczos3", "lanczos5", "gaussian", "mitchellcubic")
_LABEL_MODES = ("int", "categorical", "binary", None)


def _check_split(validation_split: Any, subset: Any, shuffle: bool, seed: Any) -> None:
    """Keras' ``check_validation_split_arg``."""
    if validation_split is not None and (
            isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real)
            or (validation_split and not 0 < validation_split < 1)):
        raise ValueError(f"`validation_split` must be between 0 and 1, received: "
                         f"{validation_split!r}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f"`subset` must be either \"training\", \"validation\" or \"both\", "
                         f"received: {subset!r}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide "
                         "a `seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")


def index_directory(directory: str, labels: Any, formats: Tuple[str, ...],
                    class_names: Optional[Sequence[str]] = None, shuffle: bool = True,
                    seed: Optional[int] = None, follow_links: bool = False,
                    verbose: bool = True) -> Tuple[List[str], Optional[np.ndarray], Any]:
    """``(file_paths, labels, class_names)`` as Keras'
    ``dataset_utils.index_directory`` lists them (see the module docstring)."""
    directory = _directory.check_directory(directory)
    if labels == "inferred":
        subdirs = _directory.class_subdirectories(directory, skip_hidden=True)
        if class_names is not None:
            if isinstance(class_names, str) or not set(class_names) <= set(subdirs):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 "subdirectories of the target directory. Expected: "
                                 f"{subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names!r}")
            subdirs = list(class_names)
    else:
        subdirs = [""]   # explicit or no labels: the whole tree, classes ignored
        if class_names is not None:
            raise ValueError("`class_names` can only be passed with labels='inferred' (with "
                             "explicit labels the class names are the sorted labels)")
    names: Any = subdirs
    filenames: List[str] = []
    found: List[int] = []
    for index, subdir in enumerate(subdirs):
        files = _directory.index_subdirectory(directory, subdir, formats, follow_links)
        filenames += files
        found += [index] * len(files)
    if labels == "inferred":
        label_array: Optional[np.ndarray] = np.array(found, dtype="int32")
    elif labels is None:
        label_array, names = None, None
    else:
        if len(labels) != len(filenames):
            raise ValueError(f"Expected the lengths of `labels` to match the number of files in "
                             f"the target directory. len(labels) is {len(labels)} while we "
                             f"found {len(filenames)} files in directory {directory!r}.")
        label_array = np.asarray(labels)
        if label_array.ndim != 1 or label_array.dtype.kind not in "iu" or (
                label_array.size and label_array.min() < 0):
            raise ValueError("`labels` must be a list of integer labels >= 0, one per file, "
                             f"got {labels!r}")
        label_array = label_array.astype("int32")
        names = [str(label) for label in sorted(set(label_array.tolist()))]
    if verbose:
        if label_array is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(names)} classes.")
    file_paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(int(1e6))
        np.random.RandomState(seed).shuffle(file_paths)
        if label_array is not None:
            np.random.RandomState(seed).shuffle(label_array)
    return file_paths, label_array, names


def _split(paths: List[str], labels: Optional[np.ndarray], validation_split: Any,
           subset: str, verbose: bool) -> Tuple[List[str], Optional[np.ndarray]]:
    """Keras' ``get_training_or_validation_split``: the last fraction validates."""
    if not validation_split:
        return paths, labels
    held_out = int(validation_split * len(paths))
    keep = slice(len(paths) - held_out, None) if subset == "validation" else slice(
        None, len(paths) - held_out)
    if verbose:
        if subset == "validation":
            print(f"Using {held_out} files for validation.")
        else:
            print(f"Using {len(paths) - held_out} files for training.")
    return paths[keep], None if labels is None else labels[keep]


def load_image(path: str, image_size: Tuple[int, int], color_mode: str, interpolation: str,
               crop_to_aspect_ratio: bool = False, data_format: str = "channels_last"
               ) -> np.ndarray:
    """One file as ``image_dataset_from_directory`` loads it: float32
    ``(height, width, channels)`` (or channels first), values 0..255."""
    img = read_image(path, color_mode, "image_dataset_from_directory")
    array = np.asarray(img, dtype=np.float32)
    img.close()
    if array.ndim == 2:
        array = array[:, :, None]
    if crop_to_aspect_ratio:
        box = _image.aspect_crop_box(array.shape[0], array.shape[1], *image_size)
        array = _image.crop(array, *box)
    array = _image.resize(array, image_size[0], image_size[1], interpolation)
    return np.ascontiguousarray(array.transpose(2, 0, 1)) if data_format == "channels_first" \
        else array


def _dataset(paths: List[str], labels: Optional[np.ndarray], label_mode: Optional[str],
             num_classes: int, batch_size: Optional[int], shuffle: bool, seed: Optional[int],
             load: Any) -> Dataset:
    items: Any = np.array(paths) if labels is None else (np.array(paths), labels)
    dataset = Dataset.from_tensor_slices(items)
    if shuffle:
        dataset = dataset.shuffle(batch_size * 8 if batch_size else 1024, seed=seed)
    eye = np.eye(num_classes, dtype=np.float32)

    def element(path: Any, label: Any = None) -> Any:
        image = load(str(path))
        if label_mode is None:
            return image
        if label_mode == "binary":
            return image, np.array([label], dtype=np.float32)
        if label_mode == "categorical":
            return image, eye[int(label)]
        return image, np.int32(label)

    dataset = dataset.map(element, num_parallel_calls=AUTOTUNE)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset


def image_dataset_from_directory(
        directory: str, labels: Any = "inferred", label_mode: Optional[str] = "int",
        class_names: Optional[Sequence[str]] = None, color_mode: str = "rgb",
        batch_size: Optional[int] = 32, image_size: Union[int, Sequence[int]] = (256, 256),
        shuffle: bool = True, seed: Optional[int] = None,
        validation_split: Optional[float] = None, subset: Optional[str] = None,
        interpolation: str = "bilinear", follow_links: bool = False,
        crop_to_aspect_ratio: bool = False, data_format: Optional[str] = None,
        verbose: bool = True) -> Any:
    """A :class:`fastconv.data.Dataset` of ``(images, labels)`` batches from
    the image files (``.bmp .gif .jpeg .jpg .png``; a GIF gives its first
    frame) under ``directory``, as Keras' ``image_dataset_from_directory``.

    Parameters
    ----------
    directory : str
        With ``labels='inferred'``, one subdirectory per class.
    labels : 'inferred', None, or a list of int labels
        One label per file, in the sorted order of the file paths of the
        whole tree (explicit labels and None ignore the class folders).
    label_mode : {'int', 'categorical', 'binary', None}
        int32 ``(batch,)``, one-hot float32 ``(batch, classes)``, float32
        ``(batch, 1)`` (two classes only), or no labels (batches of images).
    class_names : list of str, optional
        With inferred labels: the classes to use, in this order (some or all
        of the subdirectory names).
    color_mode : {'rgb', 'rgba', 'grayscale'}
    batch_size : int or None
        None yields single images.
    image_size : (height, width) or int
        Every image is resized to this (float32, values 0..255).
    shuffle, seed
        Shuffle the files (and every epoch's order); ``seed`` is needed with
        ``validation_split`` so that both subsets split the same order.
    validation_split : float, optional; subset : {'training', 'validation', 'both'}
        ``'both'`` returns ``[training, validation]``.
    interpolation : {'bilinear', 'nearest', 'bicubic', 'area'}
        As ``tf.image.resize`` (its lanczos, gaussian and mitchellcubic
        kernels raise NotImplementedError).
    follow_links : bool
        Descend into symbolic links to folders.
    crop_to_aspect_ratio : bool
        Resize the largest centred crop of the target's aspect ratio instead
        of distorting the image.
    data_format : optional
        'channels_last' (the default) or 'channels_first'.
    verbose : bool
        Print how many files and classes were found, as Keras does.

    Returns
    -------
    Dataset (or a list of two for ``subset='both'``) with attributes
    ``class_names`` (None without labels) and ``file_paths``.
    """
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple, np.ndarray)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of the "
                             "same size as the number of image files in the target directory. "
                             "If you wish to infer the labels from the subdirectory names in "
                             "the target directory, pass `labels=\"inferred\"`. If you wish to "
                             "get a dataset that only contains images (no labels), pass "
                             f"`labels=None`. Received: labels={labels!r}")
        if class_names:
            raise ValueError("You can only pass `class_names` if `labels=\"inferred\"`. "
                             f"Received: labels={labels!r}, and class_names={class_names!r}")
    if label_mode not in _LABEL_MODES:
        raise ValueError("`label_mode` argument must be one of \"int\", \"categorical\", "
                         f"\"binary\", or None. Received: label_mode={label_mode!r}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    if color_mode not in COLOR_MODES:
        raise ValueError("`color_mode` must be one of {\"rgb\", \"rgba\", \"grayscale\"}. "
                         f"Received: color_mode={color_mode!r}")
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    size = check_size(image_size, "image_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, numbers.Integral) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
    method = interpolation.lower() if isinstance(interpolation, str) else interpolation
    if method in _TF_ONLY_METHODS:
        raise NotImplementedError(f"`interpolation`={interpolation!r} is not implemented in "
                                  f"fastconv; use one of {_image.RESIZE_METHODS}")
    if method not in _image.RESIZE_METHODS:
        raise ValueError(f"`interpolation` must be one of {_image.RESIZE_METHODS}, got "
                         f"{interpolation!r}")
    fmt = check_data_format(data_format)
    _check_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(int(1e6)))
    paths, label_array, names = index_directory(
        directory, labels, ALLOWLIST_FORMATS, class_names=class_names, shuffle=shuffle,
        seed=seed, follow_links=follow_links, verbose=verbose)
    if label_mode == "binary" and len(names) != 2:
        raise ValueError("When passing `label_mode=\"binary\"`, there must be exactly 2 "
                         f"class_names. Received: class_names={names}")
    num_classes = len(names) if names else 0
    if label_mode == "categorical" and label_array is not None and label_array.size and \
            label_array.max() >= num_classes:
        raise ValueError(f"`labels` holds the label {int(label_array.max())}, which does not "
                         f"fit label_mode='categorical' with {num_classes} classes "
                         f"({names}): labels must be 0 .. {num_classes - 1}")

    def load(path: str) -> np.ndarray:
        return load_image(path, size, color_mode, method, crop_to_aspect_ratio, fmt)

    def build(which: Optional[str], mix: bool) -> Dataset:
        part_paths, part_labels = _split(paths, label_array, validation_split, which or "",
                                         verbose)
        if not part_paths:
            what = f"{which} images" if which and validation_split else "images"
            raise ValueError(f"No {what} found in directory {directory!r}. Allowed formats: "
                             f"{ALLOWLIST_FORMATS}")
        dataset = _dataset(part_paths, part_labels, label_mode, num_classes, batch_size, mix,
                           seed, load)
        dataset.class_names = names
        dataset.file_paths = part_paths
        return dataset

    if subset == "both":
        return [build("training", shuffle), build("validation", False)]
    return build(subset, shuffle)
