"""``TensorBoard``: tf.keras 2.4's callback, writing event files with tensorboardX.

The writer is the optional extra ``tensorboard`` (``pip install
'fastconv[tensorboard]'``, which brings ``tensorboardX``); it is imported when
a :class:`TensorBoard` is constructed, never when this module loads. The
files it writes are ordinary TensorBoard event files (``tensorboard
--logdir logs`` shows them) holding the same kind of records Keras 2.4's
callback writes: ``simple_value`` scalars, histograms with TensorFlow's
default buckets and PNG images.

What is written (Keras 2.4's layout)
------------------------------------
``log_dir/train`` and ``log_dir/validation`` each get an event file per
``fit`` (the validation one only once there are validation logs):

* at each epoch end, every training log ``name`` as the scalar
  ``epoch_<name>`` at step ``epoch`` (0-based, ``initial_epoch`` included)
  in ``train``, and every ``val_<name>`` as ``epoch_<name>`` in
  ``validation``; if the optimizer's learning rate is a
  :class:`~fastconv.optimizers.schedules.LearningRateSchedule`, also
  ``epoch_learning_rate`` (the schedule at ``optimizer.iterations``) in
  ``train``;
* with ``update_freq='batch'`` or ``N``, the running logs of a training
  batch as ``batch_<name>`` in ``train`` whenever the fit's global batch
  count (1, 2, ... over all epochs of this ``fit``; it restarts at each
  ``fit``, as Keras 2.4's ``model._train_counter``) is a multiple of ``N``,
  at that count as the step;
* with ``histogram_freq=k > 0``, at the end of epochs 0, k, 2k, ... a
  histogram of every weight of every layer, tagged with the weight's name
  and ``:`` replaced by ``_`` (``conv2d/kernel_0``); with ``write_images``
  also the weights as images (``conv2d/kernel_0/image/0``, ... as Keras).
"""
from __future__ import annotations

import itertools
import numbers
import os
import struct
import time
import warnings
import zlib
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .._optional import require
from .base import Callback, Logs

__all__ = ["TensorBoard"]

# Numbers the event files of this process (see _EventFile: file names must
# not depend on the clock alone).
_FILE_COUNTER = itertools.count()

# Keras 2.4 accepts these TF1-era keyword arguments and ignores them.
_V1_KWARGS = {
    "write_grads": "`write_grads` will be ignored in TensorFlow 2.0 for the `TensorBoard` "
                   "Callback.",
    "batch_size": "`batch_size` is no longer needed in the `TensorBoard` Callback and will "
                  "be ignored in TensorFlow 2.0.",
    "embeddings_layer_names": "`embeddings_layer_names` is not supported in TensorFlow 2.0. "
                              "Instead, all `Embedding` layers will be visualized.",
    "embeddings_data": "`embeddings_data` is not supported in TensorFlow 2.0. Instead, all "
                       "`Embedding` variables will be visualized.",
}

# tf.summary.image's default: at most 3 images per weight.
_MAX_IMAGES = 3

_FEATURE = "fastconv.callbacks.TensorBoard"


def _default_buckets() -> List[float]:
    """TF's default histogram bucket limits (histogram.cc): +-1e-12 growing
    by 10% up to 1e20, and 0 (tensorboardX's ``bins='tensorflow'``)."""
    positive = []
    limit = 1e-12
    while limit < 1e20:
        positive.append(limit)
        limit *= 1.1
    return [-v for v in reversed(positive)] + [0.0] + positive


_BUCKETS: List[float] = []  # filled on first use


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_freq(value: Any, name: str) -> int:
    """A frequency in epochs: an int >= 0 (0 turns the feature off)."""
    if not _is_int(value):
        raise TypeError(f"TensorBoard: `{name}` must be an int >= 0 (epochs; 0 disables it), "
                        f"got {value!r} of type {type(value).__name__}")
    if value < 0:
        raise ValueError(f"TensorBoard: `{name}` must be an int >= 0 (epochs; 0 disables it), "
                         f"got {value!r}")
    return int(value)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_, numbers.Integral)):
        raise TypeError(f"TensorBoard: `{name}` must be a bool, got {value!r} of type "
                        f"{type(value).__name__}")
    return bool(value)


def _check_update_freq(value: Any) -> Union[str, int]:
    """``'epoch'``, or a positive number of batches (``'batch'`` is 1)."""
    if isinstance(value, str):
        if value == "batch":
            return 1
        if value == "epoch":
            return "epoch"
    elif _is_int(value) and value > 0:
        return int(value)
    raise ValueError(f"TensorBoard: `update_freq` must be 'batch', 'epoch' or an int > 0 "
                     f"(batches), got {value!r}")


def _check_profile_batch(value: Any) -> Tuple[int, int]:
    """Keras 2.4's rules: an int >= 0, a ``(start, stop)`` pair of ints with
    ``0 <= start <= stop``, or the legacy strings ``'start'``/``'start,stop'``;
    returns ``(start, stop)``, ``(0, 0)`` meaning no profiling."""
    message = ("TensorBoard: `profile_batch` must be a non-negative integer or 2-tuple of "
               "positive integers (a range of batches to profile), got {!r}".format(value))
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError(message) from None
        if len(parsed) == 1:
            parsed = parsed[0]
    # Keras takes any int here, bools included (profile_batch=False is 0).
    if isinstance(parsed, (numbers.Integral, np.bool_)):
        start = stop = int(parsed)
    elif isinstance(parsed, (tuple, list)) and len(parsed) == 2 and all(
            isinstance(v, numbers.Integral) for v in parsed):
        start, stop = int(parsed[0]), int(parsed[1])
    else:
        raise ValueError(message)
    if start < 0 or stop < start:
        raise ValueError(message)
    return start, stop


def _scalar(value: Any) -> Optional[float]:
    """``value`` as a float if it is a real number (or a 0-d array of one)."""
    if isinstance(value, (str, bytes)):
        return None
    array = np.asarray(value)
    if array.ndim != 0 or array.dtype.kind not in "biuf":
        return None
    return float(array)


def _weight_images(values: np.ndarray, data_format: str) -> Optional[np.ndarray]:
    """The weight as a batch of images ``(n, h, w, c)``, or None where Keras
    2.4 logs no image (Keras' ``_log_weight_as_image`` reshaping)."""
    image = np.squeeze(values)
    if image.ndim == 1:  # a bias: one column
        image = image.reshape(1, image.shape[0], 1, 1)
    elif image.ndim == 2:  # a Dense kernel: one image, wider than tall
        if image.shape[0] > image.shape[1]:
            image = image.T
        image = image.reshape(1, image.shape[0], image.shape[1], 1)
    elif image.ndim == 3:  # a conv kernel with one input channel: one image per filter
        if data_format == "channels_last":
            image = np.transpose(image, (2, 0, 1))
        image = image.reshape(image.shape[0], image.shape[1], image.shape[2], 1)
    if image.ndim == 4 and image.shape[-1] in (1, 3, 4):
        return image
    return None


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """One float image ``(h, w, c)`` to uint8 as TF's image summary does:
    all values >= 0 are scaled so the maximum is 255; otherwise zero maps to
    128 and the largest magnitude to 127 away from it. Pixels with a
    non-finite channel become TF's bad colour (red)."""
    image = np.asarray(image, dtype=np.float32)
    height, width, depth = image.shape
    pixels = image.reshape(-1, depth)
    finite = np.isfinite(pixels).all(axis=1)
    good = pixels[finite]
    low = float(good.min()) if good.size else np.inf
    high = float(good.max()) if good.size else -np.inf
    threshold = 1e-6
    if low < 0:
        largest = max(abs(low), abs(high))
        scale, offset = (0.0 if largest < threshold else 127.0 / largest), 128.0
    else:
        scale, offset = (0.0 if high < threshold else 255.0 / high), 0.0
    out = np.empty(pixels.shape, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        out[finite] = (good * np.float32(scale) + np.float32(offset)).astype(np.uint8)
    out[~finite] = np.array([255, 0, 0, 255], dtype=np.uint8)[:depth]
    return out.reshape(height, width, depth)


def _png(image: np.ndarray) -> bytes:
    """An 8-bit grey (1 channel), RGB (3) or RGBA (4) ``(h, w, c)`` image as PNG.

    Written here with zlib rather than with tensorboardX's image summary,
    which needs Pillow (not a dependency of tensorboardX) and turns grey
    images into RGB; TF's image summary keeps one channel.
    """
    height, width, depth = image.shape
    color_type = {1: 0, 3: 2, 4: 6}[depth]
    image = np.ascontiguousarray(image, dtype=np.uint8)
    # Each row is preceded by its filter type, 0 (none).
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class _EventFile:
    """One TensorBoard event file, written synchronously.

    tensorboardX's ``SummaryWriter`` hands events to a background thread
    through a queue, and its ``flush()`` does not wait for that queue, so an
    epoch's last events could stay off disk until the next flush. Writing
    the records in the calling thread (with tensorboardX's record writer and
    summary protos) makes ``flush()`` mean "on disk now", and needs no
    thread. Each file name ends in ``.<pid>.<n>``, unique per process:
    tensorboardX names files by the second, so two files opened in one
    folder within a second would otherwise be the same file.
    """

    def __init__(self, logdir: str) -> None:
        self._summary = require("tensorboardX.summary", "tensorboard", _FEATURE)
        self._summary_pb2 = require("tensorboardX.proto.summary_pb2", "tensorboard", _FEATURE)
        self._event_pb2 = require("tensorboardX.proto.event_pb2", "tensorboard", _FEATURE)
        files = require("tensorboardX.event_file_writer", "tensorboard", _FEATURE)
        os.makedirs(logdir, exist_ok=True)
        suffix = f".{os.getpid()}.{next(_FILE_COUNTER)}"
        self._writer = files.EventsWriter(os.path.join(logdir, "events"), suffix)

    def _add(self, summary: Any, step: int) -> None:
        event = self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
        self._writer.write_event(event)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._add(self._summary.scalar(tag, value), step)

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        if not _BUCKETS:
            _BUCKETS.extend(_default_buckets())
        self._add(self._summary.histogram(tag, values, _BUCKETS), step)

    def text(self, tag: str, text: str, step: int) -> None:
        self._add(self._summary.text(tag, text), step)

    def images(self, tag: str, images: List[np.ndarray], step: int) -> None:
        """uint8 ``(h, w, c)`` images tagged ``<tag>/image/<i>``, as TF's
        image summary with ``max_images`` > 1 names them."""
        summary = self._summary_pb2.Summary()
        for i, pixels in enumerate(images):
            value = summary.value.add()
            value.tag = f"{tag}/image/{i}"
            value.image.height, value.image.width, value.image.colorspace = pixels.shape
            value.image.encoded_image_string = _png(pixels)
        self._add(summary, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class TensorBoard(Callback):
    """Write training curves and weight histograms for TensorBoard (tf.keras 2.4).

    See the module docstring for exactly what is written where; in short,
    ``epoch_<metric>`` scalars per epoch in ``log_dir/train`` and
    ``log_dir/validation``, ``batch_<metric>`` scalars with ``update_freq``,
    weight histograms (and images) with ``histogram_freq``. The ``train``
    file is opened at ``on_train_begin`` (the ``validation`` one with the
    first validation logs), both are flushed to disk at every epoch end and
    closed at ``on_train_end``; the callback can be reused for another
    ``fit`` (each one adds new event files). ``evaluate``/``predict`` given this callback
    write nothing, as in Keras 2.4, and the validation pass inside ``fit``
    leaves the writers alone.

    Parameters
    ----------
    log_dir : str or os.PathLike, default 'logs'
        Root folder; ``train/`` and ``validation/`` are created inside it.
    histogram_freq : int, default 0
        Every that many epochs (at epochs 0, k, 2k, ...), a histogram of
        each weight; 0 writes none.
    write_graph : bool, default True
        fastconv builds no TensorFlow graph, so there is no graph (and no
        Keras model JSON) to show in TensorBoard's Graphs tab. Instead, the
        text of ``model.summary()`` is written once per ``fit``, after the
        first training batch (when the model is surely built), as the text
        summary ``model_summary`` (tag ``model_summary/text_summary``, step
        0) in ``train``; TensorBoard shows it in its Text tab. False writes
        nothing.
    write_images : bool, default False
        With ``histogram_freq``, also each weight as an image, as Keras 2.4:
        a bias as one column, a Dense kernel as one image (transposed to be
        wider than tall), a conv kernel with one input channel as one image
        per filter; other shapes get no image; at most 3 images per weight,
        each scaled to 0-255 as TF's image summary does and stored as PNG
        (encoded here: Pillow is not needed).
    update_freq : 'epoch', 'batch' or int, default 'epoch'
        ``'epoch'``: only epoch scalars. ``N`` (``'batch'`` is 1): also the
        running batch logs as ``batch_<name>`` whenever the fit's global
        batch count is a multiple of ``N``.
    profile_batch : int, (int, int) or str, default 2
        Validated as Keras 2.4 does (an int >= 0, ``(start, stop)`` with
        ``0 <= start <= stop``, or ``'start,stop'``), but fastconv has no
        profiler to trace: nothing is written. A range other than the
        default 2 or 0 warns once, at construction.
    embeddings_freq : int, default 0
        Keras' projector reads embeddings from a TensorFlow checkpoint,
        which fastconv does not write: a value > 0 warns once, at
        construction, and nothing is written.
    embeddings_metadata : str, dict or None, default None
        Accepted (str / path or ``{layer_name: file}``) and unused, as
        ``embeddings_freq``.
    **kwargs
        Keras 2.4's TF1-era ``write_grads``, ``batch_size``,
        ``embeddings_layer_names`` and ``embeddings_data`` are accepted and
        ignored (a truthy one warns, as Keras logs); any other keyword is a
        ValueError, as in Keras.

    Raises
    ------
    ImportError
        At construction, if ``tensorboardX`` is not installed; the message
        names ``pip install 'fastconv[tensorboard]'``.
    ValueError, TypeError
        For an invalid argument, naming it.

    Notes
    -----
    Differences from Keras 2.4, besides ``write_graph``/``profile_batch``/
    ``embeddings_*`` above: event files are written synchronously and
    flushed at every epoch end (Keras' writers flush every 10 events or 2
    minutes), so a running TensorBoard sees each epoch when it ends, and a
    fit that stops with an exception (which, as in Keras, skips
    ``on_train_end``) leaves every completed epoch on disk; there are no custom
    ``tf.summary`` calls in a model to pick up, so validation batches write
    nothing (as in Keras without custom summaries); a log value that is not
    a real number (a string, an array) is skipped instead of failing. As in
    Keras 2.4, a weight with NaN or infinite values makes its histogram fail
    (a ValueError naming the weight).
    """

    def __init__(self, log_dir: Union[str, "os.PathLike[str]"] = "logs",
                 histogram_freq: int = 0, write_graph: bool = True, write_images: bool = False,
                 update_freq: Union[str, int] = "epoch", profile_batch: Any = 2,
                 embeddings_freq: int = 0, embeddings_metadata: Any = None,
                 **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(_V1_KWARGS))
        if unknown:
            raise ValueError(f"Unrecognized arguments in `TensorBoard` Callback: {unknown}; "
                             f"accepted besides the named ones: {sorted(_V1_KWARGS)}")
        try:
            self.log_dir = os.fspath(log_dir)
        except TypeError:
            raise TypeError(f"TensorBoard: `log_dir` must be a str or os.PathLike, got "
                            f"{type(log_dir).__name__}") from None
        self.histogram_freq = _check_freq(histogram_freq, "histogram_freq")
        self.write_graph = _check_bool(write_graph, "write_graph")
        self.write_images = _check_bool(write_images, "write_images")
        self.update_freq = _check_update_freq(update_freq)
        self._start_batch, self._stop_batch = _check_profile_batch(profile_batch)
        self.embeddings_freq = _check_freq(embeddings_freq, "embeddings_freq")
        if embeddings_metadata is not None and not isinstance(embeddings_metadata, dict):
            try:
                embeddings_metadata = os.fspath(embeddings_metadata)
            except TypeError:
                raise TypeError("TensorBoard: `embeddings_metadata` must be None, a file name "
                                "or a dict {layer_name: file name}, got "
                                f"{type(embeddings_metadata).__name__}") from None
        self.embeddings_metadata = embeddings_metadata
        # The import comes before any training so a missing extra fails here,
        # not at the end of the first epoch.
        require("tensorboardX", "tensorboard", _FEATURE)

        for name, message in _V1_KWARGS.items():
            if kwargs.get(name):
                warnings.warn(message, UserWarning, stacklevel=2)
        if self.embeddings_freq:
            warnings.warn("TensorBoard: `embeddings_freq` > 0 is not supported by fastconv "
                          "(TensorBoard's projector reads a TensorFlow checkpoint, which "
                          "fastconv does not write); no embeddings will be written",
                          UserWarning, stacklevel=2)
        if (self._start_batch, self._stop_batch) not in ((0, 0), (2, 2)):
            warnings.warn("TensorBoard: `profile_batch` is accepted but fastconv has no "
                          "profiler; no trace will be written", UserWarning, stacklevel=2)

        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers: Dict[str, _EventFile] = {}
        # The fit's global batch count (Keras 2.4's model._train_counter).
        self._train_step = 0
        self._summary_pending = False

    # -- writers ---------------------------------------------------------------
    def _writer(self, run: str) -> _EventFile:
        """The open event file of ``run`` ('train' or 'validation'), opened on first use."""
        writer = self._writers.get(run)
        if writer is None:
            writer = _EventFile(self._train_dir if run == "train" else self._val_dir)
            self._writers[run] = writer
        return writer

    def _flush_writers(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def _close_writers(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    # -- hooks -------------------------------------------------------------------
    def on_train_begin(self, logs: Logs = None) -> None:
        self._train_step = 0  # Keras 2.4's fit resets its train counter too
        self._summary_pending = self.write_graph
        self._writer("train")  # Keras opens the train writer here as well

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._train_step += 1
        if self._summary_pending:
            self._summary_pending = False
            self._write_model_summary()
        if self.update_freq != "epoch" and self._train_step % self.update_freq == 0:
            writer = self._writer("train")
            for name, value in (logs or {}).items():
                number = _scalar(value)
                if number is not None:
                    writer.scalar("batch_" + name, number, self._train_step)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._log_epoch_metrics(epoch, logs)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        self._flush_writers()

    def on_train_end(self, logs: Logs = None) -> None:
        self._close_writers()

    # -- what is written ---------------------------------------------------------
    def _write_model_summary(self) -> None:
        summary_string = getattr(self.model, "summary_string", None)
        if summary_string is None:
            return
        try:
            text = summary_string()
        except (ValueError, TypeError, NotImplementedError) as exc:
            # As Keras' keras_model_summary: a model that cannot be described
            # must not stop training.
            warnings.warn(f"TensorBoard: model.summary() failed ({exc}); no model summary "
                          "written", UserWarning, stacklevel=3)
            return
        # Indented four spaces: a Markdown code block, so the Text tab keeps
        # the table's columns.
        markdown = "\n".join("    " + line for line in text.splitlines())
        self._writer("train").text("model_summary", markdown, 0)

    def _learning_rate(self) -> Optional[float]:
        """The schedule's rate at ``optimizer.iterations``, if the rate is a
        LearningRateSchedule (Keras 2.4 logs only that case)."""
        from ..optimizers.schedules import LearningRateSchedule  # lazy: no import cycle

        optimizer = getattr(self.model, "optimizer", None)
        rate = getattr(optimizer, "learning_rate", None)
        if isinstance(rate, LearningRateSchedule):
            return float(rate(optimizer.iterations))
        return None

    def _log_epoch_metrics(self, epoch: int, logs: Logs) -> None:
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        rate = self._learning_rate()
        if rate is not None:
            train_logs["learning_rate"] = rate
        for run, run_logs in (("train", train_logs), ("validation", val_logs)):
            if not run_logs:
                continue
            writer = self._writer(run)
            for name, value in run_logs.items():
                number = _scalar(value)
                if number is not None:
                    writer.scalar("epoch_" + name, number, epoch)

    def _log_weights(self, epoch: int) -> None:
        from .. import backend  # lazy: fastconv.backend need not load with the callbacks

        writer = self._writer("train")
        data_format = backend.image_data_format()
        for layer in self.model.layers:
            for weight in layer.weights:
                tag = weight.name.replace(":", "_")
                values = np.asarray(weight.numpy())
                if values.size == 0:
                    continue  # tensorboardX's histogram needs a value
                if not np.isfinite(values).all():
                    raise ValueError(
                        f"TensorBoard: weight '{weight.name}' holds NaN or infinite values at "
                        f"the end of epoch {epoch}, so its histogram cannot be written (Keras "
                        "2.4 fails here too; TerminateOnNaN stops a diverging fit earlier)")
                writer.histogram(tag, values, epoch)
                if self.write_images:
                    images = _weight_images(values, data_format)
                    if images is not None:
                        writer.images(tag, [_to_uint8(image) for image in images[:_MAX_IMAGES]],
                                      epoch)
