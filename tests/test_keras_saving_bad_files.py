"""Keras files as hostile input: truncated, corrupted, lying about their
sizes (decompression bombs), holding the wrong shapes or dtypes, naming
classes fastconv has not got or keys a layer does not take. Each is refused
with a clear error, with bounded memory, before a model or its weights
change; optimizer state that cannot be mapped loads as a fresh optimizer,
with a warning, as in Keras."""
from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import fastconv.layers as L
from fastconv import backend
from fastconv.models import Model, load_model
from fastconv.models.keras_saving import MAX_CONFIG_BYTES

MEMORY_BOUND = 50 * 2 ** 20


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


def small_model(seed=0):
    backend.set_random_seed(seed)
    inputs = L.Input((4, 4, 1))
    x = L.Conv2D(2, 3, name="conv")(inputs)
    return Model(inputs, L.Dense(3, name="dense")(L.Flatten()(x)), name="small")


def saved(tmp_path, ext, compiled=False):
    model = small_model()
    if compiled:
        model.compile("adam", "mse")
        model.train_on_batch(np.ones((2, 4, 4, 1), np.float32), np.ones((2, 3), np.float32))
    path = tmp_path / f"m{ext}"
    model.save(path)
    return model, path


def rewrite_h5(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def rewrite_keras(path, edit_config=None, edit_weights=None):
    """The .keras file with its config (a dict) and/or weights (an h5py File) edited."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if edit_config is not None:
        config = json.loads(members["config.json"])
        edit_config(config)
        members["config.json"] = json.dumps(config).encode()
    if edit_weights is not None:
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            edit_weights(f)
        members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def untouched(model, before):
    for now, then in zip(model.get_weights(), before):
        np.testing.assert_array_equal(now, then)


def bounded(call):
    """Run ``call`` (which must raise ValueError); return the message, having
    checked that it took little memory and time."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak} bytes traced"
    assert time.perf_counter() - start < 10
    return str(info.value)


# ----------------------------------------------------------------------------
# Truncated and corrupted

@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_files_are_refused(tmp_path, ext, keep):
    _, path = saved(tmp_path, ext)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    target = small_model(seed=3)
    before = target.get_weights()
    message = bounded(lambda: load_model(path))
    assert str(path) in message or "truncated" in message
    with pytest.raises(ValueError):
        target.load_weights(path)
    untouched(target, before)


def test_corrupted_weights_in_a_keras_file_fail_the_crc(tmp_path):
    _, path = saved(tmp_path, ".keras")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    position = start + info.compress_size - 64   # inside the last dataset's data
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "corrupt" in bounded(lambda: load_model(path))


def test_files_that_are_neither_format_are_refused(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"not a model at all")
    assert "neither" in bounded(lambda: load_model(path))
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.h5")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("other.txt", "x")
    assert "no config.json" in bounded(lambda: load_model(tmp_path / "empty.keras"))


# ----------------------------------------------------------------------------
# Wrong shapes and dtypes, bombs

@pytest.mark.parametrize("ext", [".h5", ".keras"])
def test_a_weight_of_the_wrong_shape_is_refused_and_changes_nothing(tmp_path, ext):
    _, path = saved(tmp_path, ext)

    def edit(f):
        group = f["model_weights/dense/dense"] if ext == ".h5" else f["layers/dense/vars"]
        name = "kernel:0" if ext == ".h5" else "0"
        del group[name]
        group[name] = np.zeros((7, 3), np.float32)

    if ext == ".h5":
        rewrite_h5(path, edit)
    else:
        rewrite_keras(path, edit_weights=edit)
    assert "shape" in bounded(lambda: load_model(path))
    target = small_model(seed=4)
    before = target.get_weights()
    with pytest.raises(ValueError, match="shape"):
        target.load_weights(path)
    untouched(target, before)   # the conv weights, first in the file, were not assigned


@pytest.mark.parametrize("dtype", ["object", "string", "compound"])
def test_non_numeric_datasets_are_never_read(tmp_path, dtype):
    _, path = saved(tmp_path, ".h5")

    def edit(f):
        group = f["model_weights/conv/conv"]
        del group["kernel:0"]
        if dtype == "object":
            group.create_dataset("kernel:0", (3, 3, 1, 2), dtype=h5py.vlen_dtype(np.float32))
        elif dtype == "string":
            group.create_dataset("kernel:0", data=np.full((3, 3, 1, 2), "x", dtype=object),
                                 dtype=h5py.string_dtype())
        else:
            group.create_dataset("kernel:0", (3, 3, 1, 2),
                                 dtype=np.dtype([("a", "f4"), ("b", "f4")]))

    rewrite_h5(path, edit)
    target = small_model(seed=4)
    before = target.get_weights()
    for call in (lambda: load_model(path), lambda: target.load_weights(path)):
        assert "not floats" in bounded(call)
    untouched(target, before)


def test_a_dataset_declaring_two_gib_over_a_few_bytes_is_refused_unread(tmp_path):
    _, path = saved(tmp_path, ".h5")

    def edit(f):
        group = f["model_weights/dense/dense"]
        del group["kernel:0"]
        group.create_dataset("kernel:0", (2 ** 31,), dtype=np.float32, chunks=(2 ** 20,),
                             compression="gzip", fillvalue=1.0)

    rewrite_h5(path, edit)
    assert path.stat().st_size < 1024 * 1024
    assert "shape" in bounded(lambda: load_model(path))
    target = small_model()
    before = target.get_weights()
    assert "shape" in bounded(lambda: target.load_weights(path))
    untouched(target, before)


def _patch_central_directory_size(path, member, size):
    """Make the zip's central directory claim ``size`` bytes for ``member``."""
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    entry = struct.unpack_from("<I", data, end + 16)[0]   # the directory's offset
    while data[entry:entry + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, entry + 28)
        if data[entry + 46:entry + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, entry + 24, size)
            path.write_bytes(bytes(data))
            return
        entry += 46 + name_length + extra_length + comment_length
    raise AssertionError(f"{member} is not in {path}")


def test_a_zip_member_declaring_a_huge_size_is_refused_before_it_is_read(tmp_path):
    _, path = saved(tmp_path, ".keras")
    _patch_central_directory_size(path, "model.weights.h5", 2 ** 32 - 1)
    assert "decompression bomb" in bounded(lambda: load_model(path))
    target = small_model()
    assert "decompression bomb" in bounded(lambda: target.load_weights(path))


def test_a_compressed_config_bomb_is_refused_before_it_is_inflated(tmp_path):
    _, path = saved(tmp_path, ".keras")
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("model.weights.h5")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (MAX_CONFIG_BYTES + 1))
        archive.writestr("model.weights.h5", weights)
    assert path.stat().st_size < 1024 * 1024
    assert "decompression bomb" in bounded(lambda: load_model(path))


def test_links_in_an_h5_file_are_refused(tmp_path):
    _, path = saved(tmp_path, ".h5")

    def edit(f):
        group = f["model_weights/dense/dense"]
        del group["kernel:0"]
        group["kernel:0"] = h5py.SoftLink("/model_weights/conv/conv/kernel:0")

    rewrite_h5(path, edit)
    assert "links are refused" in bounded(lambda: load_model(path))
    (tmp_path / "k").mkdir()
    _, other = saved(tmp_path / "k", ".keras")

    def external(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink("elsewhere.h5", "/data")

    rewrite_keras(other, edit_weights=external)
    assert "links are refused" in bounded(lambda: load_model(other))


# ----------------------------------------------------------------------------
# Configs naming what fastconv has not got

def test_unknown_classes_name_themselves_and_custom_objects(tmp_path):
    _, path = saved(tmp_path, ".keras")

    def rename(config):
        config["config"]["layers"][1]["class_name"] = "MyConv"
        config["config"]["layers"][1]["module"] = "my_package"

    rewrite_keras(path, edit_config=rename)
    message = bounded(lambda: load_model(path))
    assert "MyConv" in message and "my_package" in message and "custom_objects" in message
    loaded = load_model(path, custom_objects={"MyConv": L.Conv2D})
    assert isinstance(loaded.get_layer("conv"), L.Conv2D)
    _, h5 = saved(tmp_path, ".h5")

    def foreign(f):
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][2]["class_name"] = "TFOpLambda"
        f.attrs["model_config"] = json.dumps(config).encode()

    rewrite_h5(h5, foreign)
    assert "Unknown layer class 'TFOpLambda'" in bounded(lambda: load_model(h5))


def test_unexpected_config_keys_are_named(tmp_path):
    _, path = saved(tmp_path, ".keras")

    def extra(config):
        config["config"]["layers"][1]["config"]["fancy_option"] = True

    rewrite_keras(path, edit_config=extra)
    assert "['fancy_option']" in bounded(lambda: load_model(path))
    _, h5 = saved(tmp_path, ".h5", compiled=True)

    def extra_training(f):
        training = json.loads(f.attrs["training_config"])
        training["optimizer_config"]["config"]["weight_decay"] = 0.01
        f.attrs["training_config"] = json.dumps(training).encode()

    rewrite_h5(h5, extra_training)
    assert "weight_decay=0.01" in bounded(lambda: load_model(h5))
    assert load_model(h5, compile=False).optimizer is None


def test_configs_that_are_not_json_or_too_deep_are_refused(tmp_path):
    _, path = saved(tmp_path, ".h5")
    rewrite_h5(path, lambda f: f.attrs.__setitem__("model_config", b"{" * 100000))
    assert "not valid JSON" in bounded(lambda: load_model(path))
    rewrite_h5(path, lambda f: f.attrs.__delitem__("model_config"))
    assert "model_config" in bounded(lambda: load_model(path))


# ----------------------------------------------------------------------------
# Optimizer state that does not fit

@pytest.mark.parametrize("ext", [".h5", ".keras"])
def test_unmappable_optimizer_state_loads_a_fresh_optimizer_with_a_warning(tmp_path, ext):
    model, path = saved(tmp_path, ext, compiled=True)

    def drop_one(f):
        if ext == ".h5":
            group = f["optimizer_weights"]
            names = list(group.attrs["weight_names"])[:-1]
            group.attrs["weight_names"] = names
        else:
            del f[f"optimizer/vars/{len(f['optimizer/vars']) - 1}"]

    if ext == ".h5":
        rewrite_h5(path, drop_one)
    else:
        rewrite_keras(path, edit_weights=drop_one)
    with pytest.warns(UserWarning, match="freshly initialized optimizer"):
        loaded = load_model(path)
    assert loaded.optimizer.iterations == 0
    for now, then in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(now, then)


def test_slot_names_out_of_tf24s_order_are_not_guessed(tmp_path):
    model, path = saved(tmp_path, ".h5", compiled=True)

    def swap(f):
        group = f["optimizer_weights"]
        names = [n.decode() for n in group.attrs["weight_names"]]
        group.attrs["weight_names"] = [n.encode() for n in
                                       [names[0]] + names[5:] + names[1:5]]  # v before m

    rewrite_h5(path, swap)
    with pytest.warns(UserWarning, match="is not a 'm' slot"):
        loaded = load_model(path)
    assert loaded.optimizer.iterations == 0
