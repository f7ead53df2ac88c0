"""Model.compile / fit / evaluate / predict / *_on_batch with Keras 2.4 semantics.

Fast tests use small synthetic problems; the oracle of the whole-network
gradient is PyTorch (skipped if absent); the acceptance test trains the seed
CNN on the digits (needs scikit-learn, ``fastconv[examples]``).
"""
from __future__ import annotations

import math
import re
import signal
import time

import numpy as np
import pytest

import fastconv as fc
from fastconv import backend, callbacks, datasets, losses, metrics, optimizers
from fastconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from fastconv.models import Model, Sequential


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def small_cnn(seed=0, dtype=None, classes=3, activation="softmax", size=6):
    """Conv -> pool -> dense: a few hundred weights, fast on either backend."""
    backend.set_random_seed(seed)
    inputs = Input((size, size, 1), dtype=dtype)
    x = Conv2D(4, 3, activation="relu", dtype=dtype)(inputs)
    x = MaxPooling2D(2, dtype=dtype)(x)
    x = Flatten(dtype=dtype)(x)
    outputs = Dense(classes, activation=activation, dtype=dtype)(x)
    return Model(inputs, outputs)


def seed_cnn(seed=0):
    """The seed notebook's CNN."""
    backend.set_random_seed(seed)
    inputs = Input(shape=(28, 28, 1))
    x = Conv2D(filters=32, kernel_size=3, strides=1, padding="same", activation="relu")(inputs)
    x = Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dense(100, activation="relu")(x)
    outputs = Dense(10, activation="softmax")(x)
    return Model(inputs=inputs, outputs=outputs)


def blobs(n=90, size=6, seed=1):
    """Three classes of 6x6 images: a bright top, left or bottom-right half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    h = size // 2
    x[y == 0, :h] += 1
    x[y == 1, :, :h] += 1
    x[y == 2, h:, h:] += 1.5
    return x, y


def twin(model, build):
    """A second model of the same architecture with the same weights."""
    other = build()
    other.set_weights(model.get_weights())
    return other


def assert_weights_equal(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# ---------------------------------------------------------------------------
# fit: History, logs, steps, validation_split, progress bar


def test_fit_returns_history_with_keras_keys_and_running_means():
    x, y = blobs()
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    batches = []

    class Spy(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append((batch, dict(logs)))

    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_split=0.2,
                        callbacks=[Spy()])
    assert isinstance(history, callbacks.History) and model.history is history
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    # 72 training samples in batches of 16: ceil(72 / 16) = 5 steps, last one of 8.
    assert [b for b, _ in batches] == [0, 1, 2, 3, 4] * 3
    # The epoch's logs are the running means after its last batch.
    for epoch in range(3):
        last = batches[5 * epoch + 4][1]
        assert history.history["loss"][epoch] == last["loss"]
        assert history.history["accuracy"][epoch] == last["accuracy"]
    assert set(batches[0][1]) == {"loss", "accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.metrics_names == ["loss", "accuracy"]


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = blobs(n=50)
    split_at = math.floor(50 * (1 - 0.3))  # Keras: the last 50 - 35 = 15 samples
    model = small_cnn()
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])
    reference = twin(model, small_cnn)
    reference.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])

    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_split=0.3,
                        shuffle=False)
    reference.fit(x[:split_at], y[:split_at], batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert_weights_equal(model, reference)  # trained on exactly the first 35 samples
    val_loss, val_accuracy = model.evaluate(x[split_at:], y[split_at:], batch_size=8,
                                            verbose=0)
    assert history.history["val_loss"] == [val_loss]
    assert history.history["val_accuracy"] == [val_accuracy]


def test_validation_data_overrides_split_and_validation_freq():
    x, y = blobs(n=40)
    xv, yv = blobs(n=12, seed=5)
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["acc"])
    seen_test_batches = []

    class Spy(callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen_test_batches.append(batch)

    history = model.fit(x, y, epochs=4, verbose=0, validation_data=(xv, yv),
                        validation_split=0.5, validation_freq=2, validation_batch_size=5,
                        callbacks=[Spy()])
    assert list(history.history) == ["loss", "acc", "val_loss", "val_acc"]
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2          # epochs 2 and 4
    assert seen_test_batches == [0, 1, 2] * 2              # 12 samples in batches of 5
    assert history.history["val_loss"][-1] == model.evaluate(xv, yv, verbose=0)[0]


def test_epoch_lines_only_when_more_than_one_epoch(capsys):
    x, y = blobs(n=40)
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=16, epochs=1)
    out = capsys.readouterr().out
    assert "Epoch" not in out
    assert "\r" not in out and "\b" not in out          # captured stream: whole lines only
    lines = out.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"3/3 \[={30}\] - \d+s \d+(ms|us|s)/step - loss: \S+ - accuracy: "
                        r"\d\.\d{4}", lines[0]), lines[0]

    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
    assert len(lines) == 4
    assert re.fullmatch(r"2/2 \[={30}\] - \d+s \d+(ms|us|s)/step - loss: \S+ - accuracy: "
                        r"\d\.\d{4} - val_loss: \S+ - val_accuracy: \d\.\d{4}", lines[-1])

    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and re.fullmatch(r"2/2 - \d+s - loss: \S+ - accuracy: \S+",
                                                    lines[1])
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_initial_epoch_and_stop_training_flag():
    x, y = blobs(n=64)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    steps = []

    class StopAfterTwoBatches(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)
            if batch == 1:
                self.model.stop_training = True

    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0,
                        callbacks=[StopAfterTwoBatches()])
    assert steps == [0, 1] and history.epoch == [0]
    assert model.optimizer.iterations == 2

    history = model.fit(x, y, batch_size=16, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4] and model.optimizer.iterations == 2 + 2 * 4
    assert model.stop_training is False

    early = callbacks.EarlyStopping(monitor="loss", patience=0, baseline=0.0)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[early])
    assert history.epoch == [0]                          # nothing beats a loss of 0


def test_shuffle_is_seeded_and_changes_the_order():
    x, y = blobs(n=48)

    def train(seed, shuffle):
        model = small_cnn()
        model.compile(optimizers.SGD(0.05), "sparse_categorical_crossentropy")
        backend.set_random_seed(seed)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=shuffle)
        return model

    assert_weights_equal(train(3, True), train(3, True))
    shuffled, other_seed, ordered = train(3, True), train(4, True), train(3, False)
    assert not np.array_equal(shuffled.get_weights()[0], other_seed.get_weights()[0])
    assert not np.array_equal(shuffled.get_weights()[0], ordered.get_weights()[0])
    batch_shuffled = train(3, "batch")  # same batches, shuffled within: same sums
    np.testing.assert_allclose(batch_shuffled.get_weights()[0], ordered.get_weights()[0],
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# evaluate / predict / *_on_batch


def test_evaluate_returns_scalar_list_or_dict():
    x, y = blobs(n=30)
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    results = model.evaluate(x, y, verbose=0)
    assert isinstance(results, list) and len(results) == 2 and results[0] == loss
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss,
                                                                 "accuracy": results[1]}


def test_evaluate_is_the_mean_over_all_samples_and_agrees_with_predict(capsys):
    x, y = blobs(n=37)
    model = small_cnn()
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=3, verbose=0)
    loss, accuracy = model.evaluate(x, y, batch_size=10)  # batches 10, 10, 10, 7
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"4/4 \[={30}\] - \d+s \d+(ms|us|s)/step - loss: \S+ - accuracy: "
                        r"\d\.\d{4}", line), line
    probabilities = model.predict(x, batch_size=10)
    assert accuracy == pytest.approx(np.mean(np.argmax(probabilities, axis=1) == y), abs=1e-12)
    p_true = np.clip(probabilities[np.arange(len(y)), y].astype(np.float64), 1e-7, 1)
    assert loss == pytest.approx(float(np.mean(-np.log(p_true))), rel=1e-5)


def test_predict_single_batch_many_batches_steps_and_verbose(capsys):
    x, _ = blobs(n=7)
    model = small_cnn()
    whole = model.predict(x)
    assert whole.dtype == np.float32 and whole.shape == (7, 3)
    np.testing.assert_array_equal(model.predict(x, batch_size=3), whole)
    assert model.predict(x, batch_size=3, steps=2).shape == (6, 3)
    np.testing.assert_array_equal(model.predict_on_batch(x[:1]), whole[:1])
    assert capsys.readouterr().out == ""
    model.predict(x, batch_size=3, verbose=1)
    assert re.fullmatch(r"3/3 \[={30}\] - \d+s \d+(ms|us|s)/step\n", capsys.readouterr().out)
    # A model whose output is a view of its input: predict returns a copy.
    inputs = Input((2, 2))
    flat = Model(inputs, Flatten()(inputs))
    data = np.ones((1, 2, 2), np.float32)
    out = flat.predict(data)
    out[...] = 5
    assert np.all(data == 1)


def test_train_on_batch_equals_one_manual_step_and_test_on_batch_equals_evaluate():
    x, y = blobs(n=20)
    model = small_cnn()
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])
    manual = twin(model, small_cnn)
    loss, accuracy = model.train_on_batch(x, y)

    probabilities = manual.forward(x)
    onehot = np.eye(3, dtype=np.float32)[y]
    grads = manual.backward((probabilities - onehot) / len(x), pre_activation=True)
    for variable, grad in zip(manual.trainable_weights, grads):
        variable.numpy()[...] -= np.float32(0.1) * grad
    for a, b in zip(model.get_weights(), manual.get_weights()):
        # Not bitwise: the loss scales by float32(1/n) where this divides by n.
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    p_true = np.clip(probabilities[np.arange(20), y].astype(np.float64), 1e-7, 1)
    assert loss == pytest.approx(float(np.mean(-np.log(p_true))), rel=1e-5)
    assert accuracy == np.mean(np.argmax(probabilities, axis=1) == y)

    assert model.test_on_batch(x, y) == model.evaluate(x, y, batch_size=20, verbose=0)
    assert model.test_on_batch(x, y, return_dict=True)["loss"] == model.test_on_batch(x, y)[0]
    # reset_metrics=False accumulates over consecutive calls, as in Keras.
    first = model.test_on_batch(x[:10], y[:10], reset_metrics=False)
    both = model.test_on_batch(x[10:], y[10:], reset_metrics=False)
    assert both[0] == pytest.approx(model.evaluate(x, y, batch_size=10, verbose=0)[0])
    assert first != both
    model.reset_metrics()
    assert model.optimizer.iterations == 1


def test_sample_and_class_weights():
    x, y = blobs(n=30)
    model = small_cnn()
    model.compile(optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0, sample_weight=np.zeros(30))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)             # zero weight: zero gradient

    by_class = small_cnn()
    by_sample = twin(by_class, small_cnn)
    for m in (by_class, by_sample):
        m.compile(optimizers.SGD(0.5), "sparse_categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    table = {0: 1.0, 1: 0.0, 2: 2.0}
    h1 = by_class.fit(x, y, epochs=2, verbose=0, shuffle=False, class_weight=table)
    h2 = by_sample.fit(x, y, epochs=2, verbose=0, shuffle=False,
                       sample_weight=np.array([table[c] for c in y]))
    assert_weights_equal(by_class, by_sample)
    assert h1.history == h2.history and list(h1.history) == ["loss", "accuracy"]
    with pytest.raises(ValueError, match="class_weight"):
        by_class.fit(x, y, verbose=0, class_weight={0: 1.0, 2: 1.0})


def test_compile_resolves_optimizers_losses_and_metrics_like_keras():
    x, y = blobs(n=24)
    model = small_cnn()
    model.compile(optimizer="Adam", loss=losses.SparseCategoricalCrossentropy(),
                  metrics=["acc"])
    assert isinstance(model.optimizer, optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(1e-3)
    model.fit(x, y, verbose=0)
    assert model.metrics[1].fn is metrics.sparse_categorical_accuracy
    assert model.metrics_names == ["loss", "acc"]

    onehot = np.eye(3, dtype=np.float32)[y]
    model.compile(optimizers.RMSprop(), "categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, onehot, verbose=0)
    assert model.metrics[1].fn is metrics.categorical_accuracy
    assert list(history.history) == ["loss", "accuracy"]

    binary = small_cnn(classes=1, activation="sigmoid")
    binary.compile("sgd", "binary_crossentropy", ["accuracy"])
    binary.fit(x, (y == 0).astype(np.float32), verbose=0)
    assert binary.metrics[1].fn is metrics.binary_accuracy
    assert isinstance(model.optimizer, optimizers.RMSprop)
    assert model.loss == "categorical_crossentropy"


def test_sequential_builds_on_fit_and_multi_input_models_train():
    x, y = blobs(n=20)
    sequential = Sequential([Conv2D(2, 3, activation="relu"), Flatten(),
                             Dense(3, activation="softmax")])
    sequential.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    assert not sequential.built
    sequential.fit(x, y, verbose=0)
    assert sequential.built and sequential.predict(x).shape == (20, 3)

    a, b = Input((4,), name="a"), Input((2,), name="b")
    from fastconv.layers import Concatenate
    out = Dense(2, activation="softmax")(Concatenate()([Dense(3)(a), b]))
    two = Model([a, b], out)
    two.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(10, 4)), rng.normal(size=(10, 2))
    labels = (xb[:, 0] > 0).astype(int)
    history = two.fit({"a": xa, "b": xb}, labels, epochs=2, verbose=0,
                      validation_data=([xa, xb], labels))
    assert len(history.history["val_accuracy"]) == 2


# ---------------------------------------------------------------------------
# The fused, stable softmax/sigmoid + cross-entropy gradient


def _spy_backward(model, calls):
    # The training step's backward pass over its tape (what Model.backward also uses).
    real = model._gradients

    def spy(tape, tensor_grads, variables, pre_activation, *args):
        calls.append(pre_activation)
        return real(tape, tensor_grads, variables, pre_activation, *args)
    model._gradients = spy


@pytest.mark.parametrize("activation,loss,pre_activation", [
    ("softmax", "sparse_categorical_crossentropy", True),
    ("softmax", "categorical_crossentropy", True),
    ("sigmoid", "binary_crossentropy", True),
    ("softmax", "mse", False),
    ("linear", losses.SparseCategoricalCrossentropy(from_logits=True), False),
])
def test_fused_path_is_used_exactly_for_matching_activation_and_loss(activation, loss,
                                                                     pre_activation):
    x, y = blobs(n=8)
    classes = 1 if activation == "sigmoid" else 3
    model = small_cnn(classes=classes, activation=activation)
    name = loss if isinstance(loss, str) else loss.name
    targets = {"sparse_categorical_crossentropy": y,
               "binary_crossentropy": (y == 0).astype(np.float32)[:, None]}.get(
        name, np.eye(3, dtype=np.float32)[y])
    model.compile("sgd", loss)
    calls = []
    _spy_backward(model, calls)
    model.train_on_batch(x, targets)
    assert calls == [pre_activation]


def test_fused_gradient_survives_saturated_softmax():
    """A confidently wrong softmax (p_true underflows to 0): the clipped
    probability formula has zero gradient there, the fused one does not."""
    inputs = Input((2,))
    model = Model(inputs, Dense(2, activation="softmax")(inputs))
    model.set_weights([np.array([[400.0, -400.0], [0, 0]], np.float32), np.zeros(2, np.float32)])
    model.compile(optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    x, y = np.array([[1.0, 0.0]], np.float32), np.array([1])
    assert model.predict(x)[0, 1] == 0.0
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss) and loss == pytest.approx(-math.log(1e-7), rel=1e-4)
    kernel = model.get_weights()[0]
    np.testing.assert_array_equal(kernel, [[399.0, -399.0], [0, 0]])  # w -= 1 * (p - onehot)


@pytest.mark.parametrize("loss,classes,activation", [
    ("sparse_categorical_crossentropy", 3, "softmax"),
    ("binary_crossentropy", 1, "sigmoid"),
])
def test_fused_gradient_matches_finite_differences_float64(loss, classes, activation):
    x, y = blobs(n=6, seed=7)
    targets = y if classes > 1 else (y == 0).astype(np.float64)[:, None]
    with fc.use_backend("numpy"):
        model = small_cnn(dtype="float64", classes=classes, activation=activation)
        model.compile(optimizers.SGD(1.0), loss)
        weights = model.get_weights()
        model.train_on_batch(x.astype(np.float64), targets)
        analytic = [before - after for before, after in zip(weights, model.get_weights())]
        probe = twin(model, lambda: small_cnn(dtype="float64", classes=classes,
                                              activation=activation))
        probe.compile("sgd", loss)
        rng = np.random.default_rng(3)
        eps = 1e-6
        for index, (w, g) in enumerate(zip(weights, analytic)):
            assert g.dtype == np.float64
            for flat in rng.choice(w.size, size=min(5, w.size), replace=False):
                values = []
                for sign in (1, -1):
                    shifted = [v.copy() for v in weights]
                    shifted[index].flat[flat] += sign * eps
                    probe.set_weights(shifted)
                    values.append(probe.test_on_batch(x.astype(np.float64), targets))
                numeric = (values[0] - values[1]) / (2 * eps)
                assert g.flat[flat] == pytest.approx(numeric, rel=1e-5, abs=1e-8), \
                    (index, flat)


# ---------------------------------------------------------------------------
# One optimizer step on the seed CNN: the whole-network gradient from PyTorch


def _torch_seed_gradients(weights, x, y):
    """Gradient of the mean cross-entropy of the seed CNN in float64, by PyTorch
    autograd, for Keras-layout weights (HWIO kernels, (in, units) dense kernels)."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; it is the "
                                                "optional oracle of the whole-network gradient")
    F = torch.nn.functional
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    k1, b1, k2, b2, k3, b3, k4, b4 = params
    h = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2)
    h = F.relu(F.conv2d(h, k1.permute(3, 2, 0, 1), b1, padding=1))   # 'same', k=3, s=1
    h = F.relu(F.conv2d(h, k2.permute(3, 2, 0, 1), b2))
    h = F.max_pool2d(h, 2)
    h = h.permute(0, 2, 3, 1).reshape(len(x), -1)                      # Keras flattens NHWC
    h = F.relu(h @ k3 + b3)
    logits = h @ k4 + b4
    F.cross_entropy(logits, torch.tensor(y)).backward()
    return [p.grad.numpy() for p in params]


def _close(actual, expected, rtol):
    scale = max(float(np.abs(expected).max()), 1e-30)
    err = float(np.abs(np.asarray(actual, np.float64) - expected).max())
    assert err <= rtol * scale, f"max abs error {err:.3e} > {rtol} * {scale:.3e}"


def test_sgd_step_on_seed_cnn_is_w_minus_lr_grad_with_torch_gradient():
    rng = np.random.default_rng(21)
    x = rng.random((6, 28, 28, 1), dtype=np.float32)
    y = np.array([0, 3, 9, 3, 5, 1])
    model = seed_cnn()
    model.compile(optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    w0 = model.get_weights()
    grads = _torch_seed_gradients(w0, x, y)
    model.train_on_batch(x, y)
    for before, after, grad in zip(w0, model.get_weights(), grads):
        # Compare the step itself, w1 - w0, with -lr * grad.
        _close(after.astype(np.float64) - before, -0.1 * grad, rtol=2e-5)


def test_sgd_momentum_steps_follow_the_keras_formula():
    rng = np.random.default_rng(22)
    x = rng.random((4, 28, 28, 1), dtype=np.float32)
    y = np.array([2, 7, 7, 0])
    lr, momentum = 0.05, 0.9
    model = seed_cnn(seed=1)
    model.compile(optimizers.SGD(lr, momentum=momentum), "sparse_categorical_crossentropy")
    velocity = [np.zeros(v.shape) for v in model.get_weights()]
    for step in range(3):
        grads = _torch_seed_gradients([v.astype(np.float32) for v in model.get_weights()], x, y)
        velocity = [momentum * v - lr * g for v, g in zip(velocity, grads)]  # Keras' rule
        expected = [p + v for p, v in zip([v.astype(np.float64) for v in model.get_weights()],
                                          velocity)]
        before = model.get_weights()
        model.train_on_batch(x, y)
        for b, after, e in zip(before, model.get_weights(), expected):
            _close(after.astype(np.float64) - b, e - b, rtol=2e-5)
    assert model.optimizer.iterations == 3


# ---------------------------------------------------------------------------
# Interrupted training leaves whole steps and a usable model


class _RaiseAt(callbacks.Callback):
    def __init__(self, hook, batch, exception=KeyboardInterrupt):
        super().__init__()
        self.hook, self.batch, self.exception = hook, batch, exception

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == "begin" and batch == self.batch:
            raise self.exception()

    def on_train_batch_end(self, batch, logs=None):
        if self.hook == "end" and batch == self.batch:
            raise self.exception()


@pytest.mark.parametrize("hook,batch,whole_steps", [("end", 3, 4), ("begin", 2, 2)])
def test_keyboard_interrupt_from_a_callback_leaves_whole_steps(hook, batch, whole_steps):
    x, y = blobs(n=64)
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    reference = twin(model, small_cnn)
    reference.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                  callbacks=[_RaiseAt(hook, batch)])
    for step in range(whole_steps):
        reference.train_on_batch(x[8 * step:8 * step + 8], y[8 * step:8 * step + 8])
    assert model.optimizer.iterations == whole_steps
    assert_weights_equal(model, reference)
    for variable in model.trainable_weights:   # Adam's moments advanced in step too
        for slot in ("m", "v"):
            np.testing.assert_array_equal(
                model.optimizer.get_slot(variable.numpy(), slot),
                reference.optimizer.get_slot(
                    reference.trainable_weights[model.trainable_weights.index(variable)].numpy(),
                    slot))
    # Still usable: predict, evaluate and a new fit all work.
    assert model.predict(x).shape == (64, 3)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.optimizer.iterations == whole_steps + 8
    assert model.evaluate(x, y, verbose=0)[1] >= 0


class _InterruptingSGD(optimizers.SGD):
    """Sends itself SIGINT after updating the first weight array of a step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updated = 0

    def _update_param(self, param, grad, slots, lr):
        super()._update_param(param, grad, slots, lr)
        self.updated += 1
        if self.updated == 1:
            signal.raise_signal(signal.SIGINT)


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
                    reason="SIGINT is not handled by Python's default handler here")
def test_ctrl_c_during_the_optimizer_step_is_held_until_the_step_is_whole():
    x, y = blobs(n=16)
    model = small_cnn()
    model.compile(_InterruptingSGD(0.1), "sparse_categorical_crossentropy")
    reference = twin(model, small_cnn)
    reference.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    reference.train_on_batch(x, y)
    assert model.optimizer.updated == len(model.trainable_weights)  # all arrays updated
    assert model.optimizer.iterations == 1
    assert_weights_equal(model, reference)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_exception_in_a_callback_also_leaves_the_model_usable():
    x, y = blobs(n=32)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=8, verbose=0,
                  callbacks=[_RaiseAt("end", 1, lambda: RuntimeError("boom"))])
    assert model.optimizer.iterations == 2 and model._tape is None
    model.fit(x, y, batch_size=8, verbose=0)


# ---------------------------------------------------------------------------
# Errors name the argument and say why


def test_error_messages():
    x, y = blobs(n=10)
    model = small_cnn()
    with pytest.raises(RuntimeError, match="must compile your model"):
        model.fit(x, y)
    model.compile("adam")
    with pytest.raises(ValueError, match="No loss found"):
        model.fit(x, y)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])

    with pytest.raises(ValueError, match=r"Data cardinality is ambiguous:\n  x sizes: 10\n"
                                         r"  y sizes: 9\n"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight sizes: 3"):
        model.fit(x, y, sample_weight=np.ones(3), verbose=0)
    bad = y.copy()
    bad[7] = 3
    with pytest.raises(ValueError, match=r"`y` does not fit the loss "
                                         r"sparse_categorical_crossentropy.*label 3 at index "
                                         r"\(7,\), outside the valid range \[0, 3\)"):
        model.fit(x, bad, verbose=0)
    bad[7] = -1
    with pytest.raises(ValueError, match=r"`y`.*label -1 at index \(7,\)"):
        model.evaluate(x, bad, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data\[1\]`.*label 3"):
        model.fit(x, y, verbose=0, validation_data=(x, np.full(10, 3)))
    with pytest.raises(ValueError, match="one-hot encoded"):
        model.fit(x, np.eye(3)[y], verbose=0)
    with pytest.raises(ValueError, match=r"`x` \(shape \(10, 6, 6, 2\)\) does not fit the "
                                         r"input of model model, which expects shape "
                                         r"\(None, 6, 6, 1\)"):
        model.fit(np.zeros((10, 6, 6, 2), np.float32), y, verbose=0)
    with pytest.raises(ValueError, match=r"`x`.*expected ndim=4, found ndim=3"):
        model.train_on_batch(np.zeros((10, 6, 6), np.float32), y)
    with pytest.raises(ValueError, match=r"`validation_data\[0\]`"):
        model.fit(x, y, verbose=0, validation_data=(x[:, :5], y))
    with pytest.raises(ValueError, match="`y` is required"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match="`epochs`"):
        model.fit(x, y, epochs=-1)
    with pytest.raises(ValueError, match="`verbose`"):
        model.evaluate(x, y, verbose=3)
    with pytest.raises(ValueError, match=r"Training data contains 1 samples, which is not "
                                         r"sufficient to split"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="`validation_split` must be a number in"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="`validation_data` must be a tuple"):
        model.fit(x, y, validation_data=x, verbose=0)
    with pytest.raises(ValueError, match="Expect x to be a non-empty"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(NotImplementedError, match="steps_per_epoch"):
        model.fit(x, y, steps_per_epoch=2)
    with pytest.raises(TypeError, match="callbacks must be Callback"):
        model.fit(x, y, verbose=0, callbacks=[print])
    with pytest.raises(ValueError, match="Unknown optimizer|optimizer"):
        model.compile("adamm", "mse")
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile("adam", "mse", ["acuracy"])
    with pytest.raises(TypeError, match="Invalid keyword"):
        model.compile("adam", "mse", sample_weight_mode="temporal")
    assert model.optimizer.iterations == 0            # nothing above trained


def test_multi_output_models_are_refused_clearly():
    inputs = Input((3,))
    model = Model(inputs, [Dense(2)(inputs), Dense(1)(inputs)])
    with pytest.raises(NotImplementedError, match="one output"):
        model.compile("adam", "mse")


def test_frozen_model_trains_nothing_but_reports_loss():
    x, y = blobs(n=16)
    model = small_cnn()
    model.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    before = model.get_weights()
    history = model.fit(x, y, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Acceptance: the seed CNN on the held-out digits


@pytest.mark.slow
def test_seed_cnn_reaches_97_percent_on_held_out_digits():
    pytest.importorskip("sklearn", reason="scikit-learn (fastconv[examples]) provides the digits")
    (x_train, y_train), (x_test, y_test) = datasets.load_digits(size=28)
    assert x_train.shape == (1346, 28, 28, 1) and x_test.shape == (451, 28, 28, 1)
    model = seed_cnn(seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=32, epochs=15, verbose=0)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"\nseed CNN, 15 epochs: {seconds:.1f} s, test accuracy {accuracy:.4f}, "
          f"loss {loss:.4f}")
    assert history.history["accuracy"][-1] > 0.99
    # Over initial-weight seeds this recipe gives 97.4% +- 0.4% (and so does an
    # independent PyTorch implementation): a result just below 0.97 after a
    # kernel change that alters float rounding is not necessarily a bug.
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f} < 0.97"
