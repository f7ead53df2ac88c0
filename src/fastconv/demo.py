"""``python -m fastconv demo``: train a CNN on real images, end to end.

The default (``--dataset digits``) is the seed notebook's CNN, written with
fastconv's Keras-like API::

    Input(28, 28, 1) -> Conv2D(32, 3, 'same', relu) -> Conv2D(64, 3, relu)
    -> MaxPooling2D(2) -> Flatten -> Dense(100, relu) -> Dense(10, softmax)

trained with ``compile('adam', 'sparse_categorical_crossentropy',
['accuracy'])`` on scikit-learn's 1,797 bundled 8x8 digits, upscaled to
28x28 (:func:`fastconv.datasets.load_digits`; no download), holding out a
stratified quarter (451 images) as the test set; it reports the test
accuracy and the time taken. Weights and shuffling are seeded (``--seed``),
so a run is reproducible (the C kernels give the same bits for any thread
count).

``--dataset mnist`` or ``fashion_mnist`` trains the same CNN on Keras'
MNIST or Fashion-MNIST (60,000 + 10,000 images, 28x28x1), and
``--dataset cifar10`` a small CNN with BatchNormalization and Dropout
(:func:`build_cifar10_cnn`) on CIFAR-10 (50,000 + 10,000 images, 32x32x3):
read from the Keras cache (``~/.keras/datasets``), downloaded once when
missing (:mod:`fastconv.datasets`). ``--max-samples N`` keeps the first N
images of each part, for a quick try.

``--backend numpy`` trains on the NumPy reference backend instead, then
measures a few training steps of both backends on the same batch and prints
how much faster the C backend is.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["main", "build_seed_cnn", "build_cifar10_cnn", "DEFAULT_EPOCHS", "DATASET_EPOCHS"]

DEFAULT_EPOCHS = 15
"""Epochs of the default run: the seed acceptance recipe (about 97.5% test accuracy)."""

DATASET_EPOCHS = {"digits": DEFAULT_EPOCHS, "mnist": 2, "fashion_mnist": 3, "cifar10": 5}
"""Default epochs per ``--dataset``: a few minutes on two cores for the Keras datasets."""

COMPARE_STEPS = 5
"""Training steps timed per backend for the speed comparison."""


def build_seed_cnn():
    """The seed notebook's CNN (functional API), with Keras' layer names."""
    from .layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from .models import Model

    input_tensor = Input(shape=(28, 28, 1))
    x = Conv2D(filters=32, kernel_size=3, strides=1, padding="same",
               activation="relu")(input_tensor)
    x = Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dense(100, activation="relu")(x)
    output = Dense(10, activation="softmax")(x)
    return Model(inputs=input_tensor, outputs=output)


def build_cifar10_cnn():
    """A small CIFAR-10 CNN: two blocks of (Conv2D, BatchNormalization) x 2,
    MaxPooling2D and Dropout, then Dense(128) with Dropout and the softmax."""
    from .layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                         MaxPooling2D)
    from .models import Model

    input_tensor = Input(shape=(32, 32, 3))
    x = input_tensor
    for filters in (32, 64):
        for _ in range(2):
            x = Conv2D(filters, kernel_size=3, padding="same", activation="relu")(x)
            x = BatchNormalization()(x)
        x = MaxPooling2D(2)(x)
        x = Dropout(0.25)(x)
    x = Flatten()(x)
    x = Dense(128, activation="relu")(x)
    x = Dropout(0.5)(x)
    output = Dense(10, activation="softmax")(x)
    return Model(inputs=input_tensor, outputs=output)


ArrayPair = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _DemoData:
    """A dataset ready to train on, and the model the demo trains on it."""

    description: str               # "the seed CNN on ..." for the header
    test_name: str                 # "held-out test" (a split of ours) or "test"
    train: ArrayPair
    test: ArrayPair
    build: Callable[[], Any]


def _load_digits(limit: Optional[int]) -> _DemoData:
    from . import datasets

    # The split is fixed (load_digits' default seed), so every run tests on
    # the same held-out quarter; --seed changes the weights and the order.
    train, test = datasets.load_digits(test_fraction=0.25, size=28)
    train, test = [(x[:limit], y[:limit]) for x, y in (train, test)]
    return _DemoData("the seed CNN on scikit-learn's handwritten digits (8x8 upscaled to "
                     "28x28)", "held-out test", train, test, build_seed_cnn)


def _load_keras_dataset(name: str, limit: Optional[int]) -> _DemoData:
    """A Keras dataset as float32 images in [0, 1] (NHWC) and its labels,
    each part cut to its first ``limit`` images."""
    from . import datasets

    module, description, build = {
        "mnist": (datasets.mnist, "the seed CNN on MNIST (28x28 grayscale digits)",
                  build_seed_cnn),
        "fashion_mnist": (datasets.fashion_mnist, "the seed CNN on Fashion-MNIST (28x28 "
                          "grayscale clothing)", build_seed_cnn),
        "cifar10": (datasets.cifar10, "a small CNN with BatchNormalization and Dropout on "
                    "CIFAR-10 (32x32 colour images)", build_cifar10_cnn),
    }[name]
    parts = []
    for x, y in module.load_data():
        x = x[:limit].astype(np.float32)
        x /= 255.0
        parts.append((x[..., np.newaxis] if x.ndim == 3 else x, y[:limit]))
    return _DemoData(description, "test", parts[0], parts[1], build)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastconv demo",
        description="Train a CNN (by default the seed CNN on scikit-learn's handwritten "
                    "digits, upscaled to 28x28) and report the test accuracy and the time "
                    "taken.")
    parser.add_argument("--dataset", choices=tuple(DATASET_EPOCHS), default="digits",
                        help="digits (default; bundled with scikit-learn, no download), or "
                             "Keras' mnist, fashion_mnist or cifar10, read from the Keras "
                             "cache (~/.keras/datasets) or downloaded once")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="training epochs (default: " + ", ".join(
                            f"{n} for {name}" for name, n in DATASET_EPOCHS.items()) + ")")
    parser.add_argument("--max-samples", type=_positive_int, default=None, metavar="N",
                        help="train on the first N training images and test on the first N "
                             "test images (default: all), for a quick try")
    parser.add_argument("--batch-size", type=_positive_int, default=32,
                        help="batch size (default 32)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and of the shuffling (default 0)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="OpenMP threads of the C backend (default: the OpenMP default)")
    parser.add_argument("--backend", choices=("c", "numpy"), default="c",
                        help="compute backend (default c); 'numpy' also measures how much "
                             "faster the C backend is")
    return parser


def _time_steps(model, x: np.ndarray, y: np.ndarray, backend_name: str, steps: int
                ) -> List[float]:
    """Seconds of each of ``steps`` training steps of ``model`` on one batch."""
    from . import ops

    times = []
    with ops.use_backend(backend_name):
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
    return times


def _compare_backends(build: Callable[[], Any], weights: List[np.ndarray], x: np.ndarray,
                      y: np.ndarray, steps: int = COMPARE_STEPS) -> None:
    """Time training steps of the model ``build`` makes on both backends, on the same batch
    and from the same weights, and print the ratio.

    Each backend runs its steps as one block after a warm-up step (the first
    call allocates and faults pages in). The blocks are not interleaved step
    by step: the BLAS threads NumPy uses keep spinning for a while after each
    call and would slow the OpenMP threads of the next C step, and the other
    way round, which measures the switch rather than either backend.
    """
    times = {}
    for name in ("c", "numpy"):
        model = build()
        model.set_weights(weights)
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        _time_steps(model, x, y, name, 1)
        times[name] = statistics.median(_time_steps(model, x, y, name, steps)) * 1e3
    print(f"speed (median of {steps} training steps on one batch of {len(x)}, measured now): "
          f"C backend {times['c']:.1f} ms/step, NumPy backend {times['numpy']:.1f} ms/step "
          f"-> the C backend is {times['numpy'] / times['c']:.1f}x faster")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; returns the process exit status (130 after Ctrl-C)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _load(name: str, limit: Optional[int]) -> Optional[_DemoData]:
    """The demo's data, or None after saying on stderr why it cannot be had."""
    if name == "digits":
        try:
            import sklearn  # noqa: F401  (the digits ship inside scikit-learn)
        except ImportError:
            print("The demo trains on the handwritten digits bundled with scikit-learn, which "
                  "is not installed.\nInstall it with:  pip install \"fastconv[examples]\"  "
                  "(or: pip install scikit-learn), or use --dataset mnist", file=sys.stderr)
            return None
        return _load_digits(limit)
    try:
        return _load_keras_dataset(name, limit)
    except (OSError, ValueError) as exc:  # offline, or a corrupt file in the cache
        print(f"The demo cannot get the {name} dataset: {exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    data = _load(args.dataset, args.max_samples)
    if data is None:
        return 1
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    epochs = args.epochs if args.epochs is not None else DATASET_EPOCHS[args.dataset]

    import fastconv
    from . import backend, config, ops

    ops.set_backend(args.backend)
    if args.threads is not None:
        ops.set_num_threads(args.threads)
    backend.clear_session()  # Keras' fresh-session layer names: conv2d, dense, ...
    backend.set_random_seed(args.seed)

    info = config.build_info()
    simd = f", {info['simd']}" if args.backend == "c" and info.get("simd") else ""
    print(f"fastconv {fastconv.__version__} demo: {data.description}")
    print(f"{len(x_train):,} training / {len(x_test):,} {data.test_name} images; backend "
          f"{args.backend} ({ops.get_num_threads()} threads{simd}), batch size "
          f"{args.batch_size}, {epochs} epochs, seed {args.seed}")
    if args.backend == "c":
        print("(--backend numpy trains on the NumPy reference backend instead and measures "
              "how much faster the C backend is)")
    print()

    model = data.build()
    model.summary()
    print()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    initial_weights = model.get_weights()
    fit_start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=1)
    fit_seconds = time.perf_counter() - fit_start
    print(f"\nEvaluating on the {data.test_name} images:")
    _, accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=1)
    total = time.perf_counter() - started
    steps = -(-len(x_train) // args.batch_size) * epochs
    print(f"\ntest accuracy: {accuracy:.4f}")
    print(f"time: {total:.1f} s in all, training {fit_seconds:.1f} s ({steps} steps, "
          f"{fit_seconds / steps * 1e3:.0f} ms/step) on the {args.backend} backend")
    if args.backend == "numpy":
        _compare_backends(data.build, initial_weights, x_train[:args.batch_size],
                          y_train[:args.batch_size])
    return 0


if __name__ == "__main__":
    sys.exit(main())
