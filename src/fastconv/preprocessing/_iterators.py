"""The iterators of :class:`ImageDataGenerator`: Keras 2.4's
``NumpyArrayIterator`` (``flow``) and ``DirectoryIterator``
(``flow_from_directory``), as :class:`fastconv.utils.Sequence` objects.

Batch ``i`` of an epoch is computed from the epoch number and ``i`` alone,
so ``fit(..., workers=4)`` may fetch batches in any order, from any thread
or process, and gets the batches a single thread would. Each batch draws
its augmentation from its own ``np.random.RandomState(seed + epoch *
len(self) + i)`` (the first batch of an epoch continues the generator that
shuffled the epoch: ``RandomState(seed + epoch * len(self))``). That is how
Keras seeds ``np.random`` before each batch when the batches are read in
order, so with a ``seed`` the first epoch's order and augmentation are
Keras': later epochs shuffle differently from Keras, whose next order comes
from wherever the global generator stands after the last batch. Without a
``seed``, one is drawn from ``np.random`` when the iterator is made
(``np.random.seed`` / ``fastconv.utils.set_random_seed`` make it
reproducible). Asking for the same batch twice within an epoch gives the
same batch (Keras would draw new augmentation).

Iterating (``next(iterator)``, ``for x, y in iterator``) runs forever, epoch
after epoch, as Keras' iterators do; ``len(iterator)`` is the number of
batches per epoch.
"""
from __future__ import annotations

import numbers
import os
import threading
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils import Sequence as _Sequence
from . import _directory
from ._image_io import (COLOR_MODES, PIL_INTERPOLATIONS, check_data_format, check_size,
                        img_to_array, load_img, save_img)

__all__ = ["Iterator", "NumpyArrayIterator", "DirectoryIterator"]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


def _seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0 or None, got {seed!r}")
    return int(seed)


class Iterator(_Sequence):
    """Base class of the image iterators (Keras' ``Iterator``): ``n``
    samples in batches of ``batch_size``, reshuffled every epoch when
    ``shuffle``. Subclasses implement
    ``_get_batches_of_transformed_samples(index_array, rng)``."""

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: Optional[int]) -> None:
        self.n = int(n)
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.seed = _seed(seed)
        # Without a seed, one from NumPy's global generator (as Keras draws from it).
        self._base_seed = self.seed if self.seed is not None else int(
            np.random.randint(0, 2**31 - 1))
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_array: Optional[np.ndarray] = None
        self._epoch = 0
        self._order_epoch = -1
        self._first_state: Any = None

    def __getstate__(self) -> Dict[str, Any]:   # picklable for spawned worker processes
        state = self.__dict__.copy()
        state["lock"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def _key(self, epoch: int, index: int) -> int:
        return (self._base_seed + epoch * len(self) + index) % 2**32

    def _epoch_order(self) -> Tuple[int, np.ndarray, Any]:
        """``(epoch, sample order, generator state after shuffling)``; the
        caller holds the lock."""
        if self._order_epoch != self._epoch:
            rng = np.random.RandomState(self._key(self._epoch, 0))
            self.index_array = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            self._first_state = rng.get_state()
            self._order_epoch = self._epoch
        assert self.index_array is not None
        return self._epoch, self.index_array, self._first_state

    def _batch(self, epoch: int, index: int, order: np.ndarray, first_state: Any) -> Any:
        rng = np.random.RandomState()
        if index == 0:
            rng.set_state(first_state)
        else:
            rng.seed(self._key(epoch, index))
        part = order[self.batch_size * index:self.batch_size * (index + 1)]
        return self._get_batches_of_transformed_samples(part, rng)

    def __getitem__(self, idx: int) -> Any:
        if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
            raise TypeError(f"batch indices must be ints, not {type(idx).__name__}")
        if not 0 <= idx < len(self):
            raise ValueError(f"Asked to retrieve element {idx}, but the Sequence has length "
                             f"{len(self)}")
        with self.lock:
            epoch, order, first_state = self._epoch_order()
            self.total_batches_seen += 1
        return self._batch(epoch, int(idx), order, first_state)

    def on_epoch_end(self) -> None:
        """Start the next epoch (a new order when shuffling)."""
        with self.lock:
            self._epoch += 1

    def reset(self) -> None:
        """Make the next ``next(iterator)`` start a batch 0."""
        self.batch_index = 0

    def __iter__(self) -> "Iterator":
        return self

    def __next__(self) -> Any:
        if len(self) == 0:
            raise StopIteration
        with self.lock:
            if self.batch_index >= len(self):
                self.batch_index = 0
                self._epoch += 1
            index = self.batch_index
            self.batch_index += 1
            self.total_batches_seen += 1
            epoch, order, first_state = self._epoch_order()
        return self._batch(epoch, index, order, first_state)

    def next(self) -> Any:
        """The next batch (Keras 1's spelling of ``next(iterator)``)."""
        return self.__next__()

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray,
                                            rng: Any = None) -> Any:
        raise NotImplementedError

    def _transform(self, batch: np.ndarray, rng: Any) -> np.ndarray:
        generator = self.image_data_generator
        if generator is None:
            return batch
        params = [generator.get_random_transform(batch.shape[1:], rng=rng)
                  for _ in range(len(batch))]
        batch = generator._apply_batch(batch, params)
        return generator._standardize_batch(batch)

    def _save(self, batch: np.ndarray, index_array: np.ndarray, rng: Any, spread: int) -> None:
        if not self.save_to_dir:
            return
        for image, j in zip(batch, index_array):
            name = (f"{self.save_prefix}_{j}_{rng.randint(spread)}."
                    f"{self.save_format}")
            save_img(os.path.join(self.save_to_dir, name), image, self.data_format, scale=True)


def _check_subset(subset: Any) -> None:
    if subset not in (None, "training", "validation"):
        raise ValueError(f"`subset` must be 'training', 'validation' or None, got {subset!r}")


class NumpyArrayIterator(Iterator):
    """Batches of arrays ``x`` (and ``y``, ``sample_weight``), augmented
    and normalised by an :class:`ImageDataGenerator` (Keras' ``flow``).

    A batch is ``(x, y)``, ``(x, y, sample_weight)``, or ``x`` alone when
    ``y`` is None; with ``x = (images, [other arrays])`` its ``x`` is the
    list ``[images, *others]`` (the others are not transformed).
    """

    def __init__(self, x: Any, y: Any, image_data_generator: Any, batch_size: int = 32,
                 shuffle: bool = False, sample_weight: Any = None, seed: Optional[int] = None,
                 data_format: Optional[str] = None, save_to_dir: Optional[str] = None,
                 save_prefix: str = "", save_format: str = "png",
                 subset: Optional[str] = None, ignore_class_split: bool = False,
                 dtype: Any = None) -> None:
        self.dtype = np.dtype(dtype or "float32").name
        data_format = check_data_format(data_format)
        if isinstance(x, (tuple, list)):
            misc = [np.asarray(x[1])] if not isinstance(x[1], list) else [
                np.asarray(a) for a in x[1]]
            x = x[0]
            for other in misc:
                if len(x) != len(other):
                    raise ValueError("All of the arrays in `x` should have the same length. "
                                     f"Found a pair with: len(x[0]) = {len(x)}, len(x[?]) = "
                                     f"{len(other)}")
        else:
            misc = []
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise ValueError(f"`x` must hold numbers, got dtype {x.dtype}")
        if y is not None and len(x) != len(y):
            raise ValueError("`x` (images tensor) and `y` (labels) should have the same length. "
                             f"Found: x.shape = {x.shape}, y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError("`x` (images tensor) and `sample_weight` should have the same "
                             f"length. Found: x.shape = {x.shape}, sample_weight.shape = "
                             f"{np.asarray(sample_weight).shape}")
        _check_subset(subset)
        if subset is not None:
            split = int(len(x) * image_data_generator._validation_split)
            if y is not None and not ignore_class_split and not np.array_equal(
                    np.unique(y[:split]), np.unique(y[split:])):
                raise ValueError("Training and validation subsets have different number of "
                                 "classes after the split. If your numpy arrays are sorted by "
                                 "the label, you might want to shuffle them.")
            part = slice(None, split) if subset == "validation" else slice(split, None)
            x, misc = x[part], [a[part] for a in misc]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        if x.ndim != 4:
            raise ValueError("Input data in `NumpyArrayIterator` should have rank 4. You passed "
                             f"an array with shape {x.shape}")
        channels_axis = 3 if data_format == "channels_last" else 1
        if x.shape[channels_axis] not in (1, 3, 4):
            warnings.warn(f"NumpyArrayIterator is set to use the data format convention "
                          f"\"{data_format}\" (channels on axis {channels_axis}), i.e. expected "
                          f"either 1, 3, or 4 channels on axis {channels_axis}. However, it was "
                          f"passed an array with shape {x.shape} ({x.shape[channels_axis]} "
                          "channels).", stacklevel=3)
        self.x = x
        self.x_misc = misc
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir, self.save_prefix, self.save_format = (save_to_dir, save_prefix,
                                                                save_format)
        super().__init__(x.shape[0], batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray,
                                            rng: Any = None) -> Any:
        rng = np.random.RandomState() if rng is None else rng
        batch = self.x[index_array].astype(self.dtype)
        batch = self._transform(batch, rng)
        self._save(batch, index_array, rng, 10**4)
        others = [a[index_array] for a in self.x_misc]
        images: Any = batch if not others else [batch, *others]
        if self.y is None:
            return images
        output: Tuple[Any, ...] = (images, self.y[index_array])
        if self.sample_weight is not None:
            output += (self.sample_weight[index_array],)
        return output


class DirectoryIterator(Iterator):
    """Batches of the images in the class subfolders of ``directory``
    (Keras' ``flow_from_directory``), decoded by Pillow, resized to
    ``target_size`` and passed through an :class:`ImageDataGenerator`.

    Attributes as Keras': ``directory``, ``class_indices`` (``{name:
    index}``), ``classes`` (the class index of every file), ``filenames``
    (relative to ``directory``), ``filepaths``, ``labels``, ``samples``
    (``n``), ``num_classes``, ``image_shape``, ``batch_size``.

    ``class_mode``: ``'categorical'`` (one-hot), ``'binary'`` and
    ``'sparse'`` (class indices as floats), ``'input'`` (the images as
    targets) or None (images only).
    """

    allowed_class_modes = ("categorical", "binary", "sparse", "input", None)

    def __init__(self, directory: str, image_data_generator: Any,
                 target_size: Sequence[int] = (256, 256), color_mode: str = "rgb",
                 classes: Optional[Sequence[str]] = None,
                 class_mode: Optional[str] = "categorical", batch_size: int = 32,
                 shuffle: bool = True, seed: Optional[int] = None,
                 data_format: Optional[str] = None, save_to_dir: Optional[str] = None,
                 save_prefix: str = "", save_format: str = "png", follow_links: bool = False,
                 subset: Optional[str] = None, interpolation: str = "nearest",
                 keep_aspect_ratio: bool = False, dtype: Any = None) -> None:
        directory = _directory.check_directory(directory)
        self.target_size = check_size(target_size, "target_size")
        if color_mode not in COLOR_MODES:
            raise ValueError(f"Invalid color mode: {color_mode!r}; expected \"rgb\", \"rgba\", "
                             "or \"grayscale\".")
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode: {class_mode!r}; expected one of: "
                             f"{self.allowed_class_modes}")
        if interpolation not in PIL_INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {PIL_INTERPOLATIONS}, got "
                             f"{interpolation!r}")
        _check_subset(subset)
        self.color_mode, self.class_mode = color_mode, class_mode
        self.data_format = check_data_format(data_format)
        channels = COLOR_MODES[color_mode]
        self.image_shape = (self.target_size + (channels,) if self.data_format == "channels_last"
                            else (channels,) + self.target_size)
        self.interpolation, self.keep_aspect_ratio = interpolation, bool(keep_aspect_ratio)
        self.image_data_generator = image_data_generator
        self.dtype = np.dtype(dtype or "float32").name
        self.save_to_dir, self.save_prefix, self.save_format = (save_to_dir, save_prefix,
                                                                save_format)
        self.subset = subset
        split_at = image_data_generator._validation_split if image_data_generator else 0.0
        if subset is None:
            self.split: Optional[Tuple[float, float]] = None
        else:
            self.split = (0.0, split_at) if subset == "validation" else (split_at, 1.0)
        self.directory = directory
        if classes:
            if isinstance(classes, str):
                raise ValueError(f"`classes` must be a list of subdirectory names, got the "
                                 f"string {classes!r}")
            classes = list(classes)
            for name in classes:
                if not os.path.isdir(os.path.join(directory, name)):
                    raise ValueError(f"`classes` names {name!r}, which is not a subdirectory "
                                     f"of {directory!r}")
        else:
            classes = _directory.class_subdirectories(directory, skip_hidden=False)
        self.num_classes = len(classes)
        self.class_indices: Dict[str, int] = dict(zip(classes, range(len(classes))))
        self.filenames: List[str] = []
        labels: List[int] = []
        for name in classes:
            found = _directory.index_subdirectory(directory, name, self.white_list_formats,
                                                  follow_links, self.split)
            self.filenames += found
            labels += [self.class_indices[name]] * len(found)
        self.samples = len(self.filenames)
        self.classes = np.array(labels, dtype="int32")
        if not self.samples:
            where = "" if subset is None else f" for the {subset!r} subset"
            raise ValueError(f"No images found{where} in the class subdirectories of "
                             f"{directory!r} ({self.num_classes} classes found; allowed "
                             f"extensions: {', '.join(self.white_list_formats)})")
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, name) for name in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def filepaths(self) -> List[str]:
        """The absolute (or as given) path of every image file."""
        return self._filepaths

    @property
    def labels(self) -> np.ndarray:
        """The class index of every image file (``classes``)."""
        return self.classes

    @property
    def sample_weight(self) -> None:
        return None

    def _get_batches_of_transformed_samples(self, index_array: np.ndarray,
                                            rng: Any = None) -> Any:
        rng = np.random.RandomState() if rng is None else rng
        batch = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        for i, j in enumerate(index_array):
            img = load_img(self._filepaths[j], color_mode=self.color_mode,
                           target_size=self.target_size, interpolation=self.interpolation,
                           keep_aspect_ratio=self.keep_aspect_ratio)
            batch[i] = img_to_array(img, data_format=self.data_format, dtype=self.dtype)
            img.close()
        batch = self._transform(batch, rng)
        self._save(batch, index_array, rng, 10**7)
        if self.class_mode == "input":
            return batch, batch.copy()
        if self.class_mode in ("binary", "sparse"):
            return batch, self.classes[index_array].astype(self.dtype)
        if self.class_mode == "categorical":
            targets = np.zeros((len(batch), self.num_classes), dtype=self.dtype)
            targets[np.arange(len(batch)), self.classes[index_array]] = 1.0
            return batch, targets
        return batch
