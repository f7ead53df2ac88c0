"""The training-support modules working together, as Model.fit will use them.

A softmax regression on the 8x8 digits, written with plain NumPy: the fused
loss gives the gradient of the logits, the optimizer updates the weights in
place, the metrics keep Keras' running means and the callbacks see Keras'
hooks and logs.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest

from fastconv import callbacks as cbks
from fastconv import datasets, losses, metrics, optimizers

pytest.importorskip("sklearn", reason="scikit-learn (fastconv[examples]) is not installed")


def test_softmax_regression_on_digits_learns_and_logs_like_keras():
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    rng = np.random.default_rng(0)
    kernel = (rng.normal(size=(64, 10)) * 0.01).astype(np.float32)
    bias = np.zeros(10, np.float32)

    loss = losses.get("sparse_categorical_crossentropy")
    optimizer = optimizers.get("adam")
    batch_size, epochs = 64, 3
    steps = math.ceil(len(x_train) / batch_size)
    stream = io.StringIO()

    class Model:
        stop_training = False

        def get_weights(self):
            return [kernel.copy(), bias.copy()]

        def set_weights(self, weights):
            kernel[...], bias[...] = weights

    model = Model()
    history = cbks.History()
    callback_list = cbks.CallbackList([cbks.ProgbarLogger(stream=stream), history], model=model,
                                      verbose=1, epochs=epochs, steps=steps)
    loss_tracker = metrics.Mean("loss")
    accuracy = metrics.get("accuracy")
    callback_list.on_train_begin()
    for epoch in range(epochs):
        loss_tracker.reset_state()
        accuracy.reset_state()
        callback_list.on_epoch_begin(epoch)
        order = rng.permutation(len(x_train))
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            x, y = x_train[index], y_train[index]
            logits = x @ kernel + bias
            value, d_logits = loss.value_and_gradient(y, logits, from_logits=True)
            optimizer.apply_gradients(zip([x.T @ d_logits, d_logits.sum(0)], [kernel, bias]))
            loss_tracker.update_state(value, sample_weight=len(x))
            accuracy.update_state(y, logits)
            callback_list.on_train_batch_end(step, {"loss": loss_tracker.result(),
                                                    "accuracy": accuracy.result()})
        test_logits = x_test @ kernel + bias
        val_loss = loss.value_and_gradient(y_test, test_logits, from_logits=True)[0]
        val_accuracy = float(np.mean(np.argmax(test_logits, -1) == y_test))
        callback_list.on_epoch_end(epoch, {"loss": loss_tracker.result(),
                                           "accuracy": accuracy.result(),
                                           "val_loss": val_loss, "val_accuracy": val_accuracy})
    callback_list.on_train_end()

    assert optimizer.iterations == epochs * steps
    assert accuracy.fn is metrics.sparse_categorical_accuracy
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.85
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3",
                                                                    "Epoch 3/3"]
    final = lines[-1]
    assert final.startswith(f"{steps}/{steps} [{'=' * 30}] - ")
    assert f" - val_accuracy: {history.history['val_accuracy'][-1]:.4f}" in final
