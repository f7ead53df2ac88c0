"""The seed CNN end to end: a training step and inference, fastconv vs PyTorch."""
import numpy as np
import pytest

from fastconv import ops
from fastconv.bench import _seed_model, _torch_seed_model
from fastconv.optimizers import SGD

BATCH_TRAIN, BATCH_INFER = 64, 256


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((BATCH_INFER, 28, 28, 1), dtype=np.float32)
    return x, rng.integers(0, 10, size=BATCH_INFER)


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
def test_train_step(benchmark, data, impl, n_threads):
    x, y = data
    x, y = x[:BATCH_TRAIN], y[:BATCH_TRAIN]
    benchmark.group = f"seed CNN training step, batch {BATCH_TRAIN}, {n_threads}T"
    if impl == "fastconv":
        model = _seed_model()
        model.compile(optimizer=SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy")
        fn = lambda: model.train_on_batch(x, y)  # noqa: E731
    else:
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        model = _torch_seed_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        yt = torch.from_numpy(y)

        def fn():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt), yt).backward()
            opt.step()
    benchmark.extra_info["images_per_call"] = BATCH_TRAIN
    benchmark.pedantic(fn, rounds=20, warmup_rounds=2)


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
def test_inference(benchmark, data, impl, n_threads):
    x, _ = data
    benchmark.group = f"seed CNN inference, batch {BATCH_INFER}, {n_threads}T"
    if impl == "fastconv":
        model = _seed_model()
        fn = lambda: model.predict(x, batch_size=BATCH_INFER)  # noqa: E731
    else:
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        model = _torch_seed_model().eval()
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

        def fn():
            with torch.no_grad():
                return torch.softmax(model(xt), dim=1)
    benchmark.extra_info["images_per_call"] = BATCH_INFER
    benchmark.pedantic(fn, rounds=20, warmup_rounds=2)


def test_single_image_predict_latency(benchmark):
    """Per-call overhead: one image through predict (Keras users hit ~ms here)."""
    model = _seed_model()
    x = np.zeros((1, 28, 28, 1), np.float32)
    benchmark.group = "seed CNN predict, 1 image"
    previous = ops.set_num_threads(None)
    try:
        benchmark.pedantic(lambda: model.predict(x), rounds=200, warmup_rounds=5)
    finally:
        ops.set_num_threads(previous)
