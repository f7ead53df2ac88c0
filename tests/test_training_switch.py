"""What ``training`` a model call gives its layers: ``model(x)`` without it lets
each layer take its Keras default (inference for Dropout and BatchNormalization,
augmentation for the random preprocessing layers), ``predict`` is inference."""
from __future__ import annotations

import numpy as np


def test_a_model_called_without_training_augments_but_predict_does_not():
    # tf.keras 2.4's data-augmentation tutorial: `augmentation(images)` shows
    # augmented images, while Dropout in the same call stays off.
    from fastconv.layers import Dropout, Input, RandomFlip
    from fastconv.models import Sequential
    images = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1) + 1
    model = Sequential([Input((4, 4, 1)), RandomFlip("horizontal", seed=1), Dropout(0.99)])
    flipped = [model(images).numpy() for _ in range(8)]
    assert any(np.array_equal(f, images[:, :, ::-1]) or not np.array_equal(f, images)
               for f in flipped)
    for f in flipped:   # each image is itself or its mirror: flipped, never dropped out
        for got, image in zip(f, images):
            assert np.array_equal(got, image) or np.array_equal(got, image[:, ::-1])
    np.testing.assert_array_equal(model.predict(images, verbose=0), images)
    np.testing.assert_array_equal(model(images, training=False).numpy(), images)
