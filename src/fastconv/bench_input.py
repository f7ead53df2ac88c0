"""Benchmark of the image input pipeline: does loading keep up with training?

:func:`bench_image_input` writes a folder of small grayscale JPEGs (10
class folders) to a temporary directory, then times one epoch of ``fit`` of
the seed CNN (``fastconv.bench_models.seed_cnn``, 28x28x1, SGD, batch 64) on

* the same number of images as in-memory arrays (the compute alone);
* ``ImageDataGenerator(...).flow_from_directory(...)`` with augmentation
  (rescale, rotation, shifts, zoom, horizontal flips), decoded, resized to
  28x28 and augmented in the calling thread (``workers=0``) or prefetched
  by fit's background thread (``workers=1``) or by two worker processes
  (``workers=2, use_multiprocessing=True``: decoding and augmenting in
  Python hold the GIL, which a thread shares with the training loop);

and, for scale, the loader alone (a pass over the iterator, no training).
Rows are the shape of :func:`fastconv.bench.bench_loader`'s plus images/s;
:func:`image_input_table` prints them. Needs Pillow (``fastconv[image]``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import List, Optional, Sequence

import numpy as np

from . import ops

__all__ = ["bench_image_input", "image_input_table", "write_jpeg_folder"]

BATCH = 64
SOURCE_SIZE = 32      # the JPEGs' side; the iterator resizes them to 28x28
CLASSES = 10


def write_jpeg_folder(root: str, n_images: int, rng: np.random.Generator,
                      size: int = SOURCE_SIZE, classes: int = CLASSES) -> None:
    """``n_images`` grayscale ``size x size`` JPEGs of smooth random blobs,
    spread over ``classes`` subfolders ``class_0`` ... of ``root``."""
    from ._optional import require
    Image = require("PIL.Image", "image", "fastconv.bench_input")
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n_images):
        folder = os.path.join(root, f"class_{i % classes}")
        os.makedirs(folder, exist_ok=True)
        cy, cx = rng.uniform(4, size - 4, 2)
        image = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(3, 8) ** 2))
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image, "L").save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def bench_image_input(n_threads: int, train_batches: int, rng: np.random.Generator,
                      rounds: int = 5) -> List[dict]:
    """Milliseconds per training step and images/s with augmented JPEG
    batches from ``flow_from_directory`` beside in-memory arrays (see the
    module docstring). Each timed call is one epoch of ``train_batches``
    batches of 64; medians of ``rounds`` interleaved rounds."""
    from .bench_models import seed_cnn
    from .bench_timing import interleaved_medians
    from .optimizers import SGD
    from .preprocessing.image import ImageDataGenerator

    n_images = BATCH * train_batches
    root = tempfile.mkdtemp(prefix="fastconv-bench-jpegs-")
    try:
        write_jpeg_folder(root, n_images, rng)
        generator = ImageDataGenerator(rescale=1 / 255, rotation_range=10,
                                       width_shift_range=0.1, height_shift_range=0.1,
                                       zoom_range=0.1, horizontal_flip=True)
        iterator = generator.flow_from_directory(
            root, target_size=(28, 28), color_mode="grayscale", class_mode="sparse",
            batch_size=BATCH, shuffle=True, seed=0)
        x = rng.random((n_images, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, CLASSES, size=n_images)
        model = seed_cnn()
        model.compile(optimizer=SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy")

        def load_only() -> None:
            for index in range(len(iterator)):
                iterator[index]
            iterator.on_epoch_end()

        fns = {
            "arrays": lambda: model.fit(x, y, batch_size=BATCH, verbose=0, shuffle=False),
            "workers=0": lambda: model.fit(iterator, verbose=0, workers=0),
            "workers=1": lambda: model.fit(iterator, verbose=0, workers=1),
            "2 procs": lambda: model.fit(iterator, verbose=0, workers=2,
                                             use_multiprocessing=True),
            "load only": load_only,
        }
        previous = ops.set_num_threads(n_threads)
        try:
            med = interleaved_medians(fns, rounds=rounds, warmup=1)
        finally:
            ops.set_num_threads(previous)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = med["arrays"] / train_batches * 1e3
    loader_img_s = n_images / med["load only"]
    rows = []
    for how in ("workers=0", "workers=1", "2 procs"):
        step = med[how] / train_batches * 1e3
        rows.append({"what": f"fit on flow_from_directory JPEGs, {how}", "threads": n_threads,
                     "array_ms_step": base, "loader_ms_step": step, "extra_ms": step - base,
                     "array_img_s": n_images / med["arrays"],
                     "loader_img_s": n_images / med[how], "load_only_img_s": loader_img_s})
    return rows


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def image_input_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`bench_image_input` as a text table."""
    header = (f"{'image input (seed CNN, batch 64)':42s} {'thr':>3s} {'arrays img/s':>13s} "
              f"{'loader img/s':>13s} {'added ms/step':>14s} {'load-only img/s':>16s}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['what']:42s} {r['threads']:3d} {r['array_img_s']:13.0f} "
                     f"{r['loader_img_s']:13.0f} {r['extra_ms']:14.2f} "
                     f"{_fmt(r.get('load_only_img_s'), '16.0f')}")
    return "\n".join(lines)


def main() -> None:   # python -m fastconv.bench_input
    rng = np.random.default_rng(0)
    threads = ops.get_num_threads()
    start = time.perf_counter()
    rows = bench_image_input(threads, train_batches=8, rng=rng)
    print(image_input_table(rows))
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
