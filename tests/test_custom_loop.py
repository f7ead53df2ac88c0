"""Hand-written training loops: ``model.compute_gradients`` gives the loss and
its gradients aligned with ``model.trainable_variables`` (checked against
central differences), and a loop that applies them with the optimizer trains
bitwise as ``fit`` does on the same batches."""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import backend, losses, regularizers
from fastconv.layers import BatchNormalization, Dense, Input
from fastconv.models import Model, Sequential
from fastconv.optimizers import SGD, Adam

BATCH = 8


def _data(n=32):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, labels


def _classifier():
    backend.set_random_seed(0)
    inputs = Input((5,))
    hidden = BatchNormalization()(Dense(6, activation="relu")(inputs))
    return Model(inputs, Dense(3, activation="softmax")(hidden))


def test_a_hand_loop_trains_bitwise_as_fit():
    x, y = _data()
    fitted = _classifier()
    fitted.compile(optimizer=Adam(0.01), loss="sparse_categorical_crossentropy")
    history = fitted.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)

    looped = _classifier()
    optimizer = Adam(0.01)
    loss_fn = losses.SparseCategoricalCrossentropy()
    epoch_losses = []
    for _ in range(2):
        values = []
        for start in range(0, len(x), BATCH):
            value, grads = looped.compute_gradients(x[start:start + BATCH],
                                                    y[start:start + BATCH], loss=loss_fn)
            optimizer.apply_gradients(zip(grads, looped.trainable_variables))
            values.append(value)
        epoch_losses.append(np.mean(values))
    for a, b in zip(fitted.weights, looped.weights):   # moving statistics included
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(epoch_losses, history.history["loss"], rtol=1e-6)


def test_gradients_match_central_differences_with_the_penalties():
    # A linear model under MSE and L2 penalties: the loss is quadratic in the
    # weights, so central differences are exact but for rounding.
    backend.set_random_seed(1)
    model = Sequential([Input((4,)),
                        Dense(3, kernel_regularizer=regularizers.l2(0.1),
                              bias_regularizer=regularizers.l1(0.0))])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, 6)
    value, grads = model.compute_gradients(x, y, loss="mse", sample_weight=weights)
    assert [g.shape for g in grads] == [v.shape for v in model.trainable_variables]

    def loss_at():
        pred = model.predict(x, verbose=0).astype(np.float64)
        per_sample = np.mean((pred - y) ** 2, axis=1)
        kernel = model.trainable_variables[0].numpy().astype(np.float64)
        return np.sum(per_sample * weights) / len(x) + 0.1 * np.sum(kernel ** 2)

    assert value == pytest.approx(loss_at(), rel=1e-5)
    step = 1e-2
    for variable, grad in zip(model.trainable_variables, grads):
        array = variable.numpy()
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            up = loss_at()
            array[index] = saved - step
            down = loss_at()
            array[index] = saved
            assert grad[index] == pytest.approx((up - down) / (2 * step), rel=2e-3, abs=2e-4)


def test_the_compiled_loss_and_its_weight_are_the_default():
    x, y = _data(8)
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", loss_weights=0.5)
    value, grads = model.compute_gradients(x, y)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    full_value, full_grads = model.compute_gradients(x, y)
    assert value == pytest.approx(0.5 * full_value, rel=1e-6)
    for half, full in zip(grads, full_grads):
        np.testing.assert_allclose(half, 0.5 * full, rtol=1e-5, atol=1e-8)


def test_computing_gradients_changes_no_weight_no_metric_and_no_optimizer():
    x, y = _data(8)
    model = _classifier()
    model.compile(optimizer=SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.evaluate(x, y, verbose=0)
    metrics_before = [m.result() for m in model.metrics]
    trainable_before = [v.numpy().copy() for v in model.trainable_variables]
    model.compute_gradients(x, y)
    for before, variable in zip(trainable_before, model.trainable_variables):
        np.testing.assert_array_equal(before, variable.numpy())
    assert model.optimizer.iterations == 0
    assert [m.result() for m in model.metrics] == metrics_before


def test_class_weight_is_sample_weight_per_class():
    x, y = _data(16)
    model = _classifier()
    by_class = model.compute_gradients(x, y, loss="sparse_categorical_crossentropy",
                                       class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    by_sample = model.compute_gradients(x, y, loss="sparse_categorical_crossentropy",
                                        sample_weight=np.array([1.0, 2.0, 0.5])[y])
    assert by_class[0] == by_sample[0]
    for a, b in zip(by_class[1], by_sample[1]):
        np.testing.assert_array_equal(a, b)


def test_freezing_a_layer_between_calls_takes_effect_at_once():
    x, y = _data(8)
    model = _classifier()
    _, grads = model.compute_gradients(x, y, loss="sparse_categorical_crossentropy")
    assert len(grads) == len(model.trainable_variables) == 6
    model.layers[1].trainable = False
    _, grads = model.compute_gradients(x, y, loss="sparse_categorical_crossentropy")
    assert len(grads) == len(model.trainable_variables) == 4


def test_a_subclassed_model_built_by_its_first_batch():
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.hidden = Dense(4, activation="relu")
            self.out = Dense(2)

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    backend.set_random_seed(2)
    net = Net()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    value, grads = net.compute_gradients(x, np.zeros((5, 2), np.float32), loss="mse")
    assert np.isfinite(value)
    assert [g.shape for g in grads] == [(3, 4), (4,), (4, 2), (2,)]


def test_bad_calls_say_what_is_wrong():
    x, y = _data(8)
    model = _classifier()
    with pytest.raises(ValueError, match="pass `loss`"):
        model.compute_gradients(x, y)
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compute_gradients(x, y, loss="no_such_loss")
    with pytest.raises(ValueError, match="`y`"):
        model.compute_gradients(x, y + 5, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="sample_weight sizes: 3"):
        model.compute_gradients(x, y, loss="sparse_categorical_crossentropy",
                                sample_weight=np.ones(3))


def test_return_outputs_gives_the_batch_output():
    backend.set_random_seed(3)
    model = Sequential([Input((5,)), Dense(4, activation="relu"), Dense(3, activation="softmax")])
    x, y = _data(8)
    value, grads, outputs = model.compute_gradients(x, y, loss="sparse_categorical_crossentropy",
                                                    return_outputs=True)
    np.testing.assert_array_equal(outputs, model.predict(x, verbose=0))
    assert (value, len(grads)) == (model.compute_gradients(
        x, y, loss="sparse_categorical_crossentropy")[0], 4)
