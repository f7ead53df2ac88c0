"""fastconv.datasets.{mnist, fashion_mnist, cifar10, cifar100}: Keras' arrays from Keras' files.

Every file is made here, small, in the exact format of the real one: MNIST's
``mnist.npz``, Fashion-MNIST's four gzip'ed IDX files, CIFAR's Python 2
pickles (written as Python 2's cPickle wrote them: protocol 2, strings as
byte strings, ``numpy.core.multiarray._reconstruct``) in their folder and in
the ``.tar.gz``. ``KERAS_HOME`` (and ``HOME``) point into ``tmp_path``, so the
real ``~/.keras`` is never read or written, and every origin points at a
port that refuses connections unless a test serves files on 127.0.0.1.

Keras 3's own loaders, reading the same files, are the oracle; its hash
check is switched off (the made-up files cannot have the published hashes)
and its downloads made impossible.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
import time
import tracemalloc
import warnings
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from fastconv import demo
from fastconv.datasets import cifar10, cifar100, fashion_mnist, mnist

LOADERS = (mnist, fashion_mnist, cifar10, cifar100)
HASH_WARNING = "is not the file published at"


# ---------------------------------------------------------------------------
# The cache, the origins, a local server


@pytest.fixture(scope="module")
def refusing_origin():
    """A URL on a port bound but not listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


@pytest.fixture(autouse=True)
def datadir(tmp_path, monkeypatch, refusing_origin):
    """``$KERAS_HOME/datasets`` in tmp_path; every origin unreachable."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(mnist, "ORIGIN", refusing_origin + "mnist.npz")
    monkeypatch.setattr(fashion_mnist, "ORIGIN", refusing_origin)
    monkeypatch.setattr(cifar10, "ORIGIN", refusing_origin + "cifar-10-python.tar.gz")
    monkeypatch.setattr(cifar100, "ORIGIN", refusing_origin + "cifar-100-python.tar.gz")
    path = tmp_path / "keras" / "datasets"
    path.mkdir(parents=True)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(folder served, its URL) on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def assert_same(actual, expected):
    for (x, y), (ex, ey) in zip(actual, expected):
        for a, e in ((x, ex), (y, ey)):
            assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
            # Contiguous copies and np.array_equal: comparing Keras' transposed
            # views in place (or with assert_array_equal) takes seconds for CIFAR.
            a, e = np.ascontiguousarray(a), np.ascontiguousarray(e)
            assert np.array_equal(a, e), f"first difference at {np.argwhere(a != e)[0]}"


# ---------------------------------------------------------------------------
# The files, in their real formats


def make_mnist(path, n_train=20, n_test=7, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    np.savez_compressed(path, **arrays)
    return ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))


def idx_bytes(array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def make_fashion(folder, n_train=12, n_test=5, seed=1):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, n_train, dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(fashion_mnist.FILES, (y_train, x_train, y_test, x_test)):
        (folder / name).write_bytes(idx_bytes(array))
    return (x_train, y_train), (x_test, y_test)


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote CIFAR's batches: protocol 2, every
    str and bytes as a Python 2 byte string, numpy's pre-2.0 module names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name).replace("numpy._core.", "numpy.core.")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def cifar_batch(rng, n, label_keys, n_classes, title):
    """A batch dict as in the real files, and its images channels-last."""
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {"batch_label": title, "data": data,
             "filenames": [f"image_{i:05d}.png" for i in range(n)]}
    for key, classes in zip(label_keys, n_classes):
        batch[key] = [int(v) for v in rng.integers(0, classes, n)]
    return batch, data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)


def make_cifar10(root, per_batch=3, n_test=4, seed=2):
    """``root/cifar-10-batches-py/`` and the arrays Keras should return."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        batch, _ = cifar_batch(rng, n, ["labels"], [10], f"batch {name}")
        (folder / name).write_bytes(py2_pickle(batch))
        data.append(batch["data"])
        ys.append(np.array(batch["labels"], np.uint8).reshape(-1, 1))
    (folder / "batches.meta").write_bytes(py2_pickle({"label_names": ["airplane"] * 10}))

    def channels_last(rows):
        return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return ((channels_last(np.concatenate(data[:5])), np.concatenate(ys[:5])),
            (channels_last(data[5]), ys[5]))


def make_cifar100(root, n_train=6, n_test=3, seed=3):
    """``root/cifar-100-python/`` and the arrays for both label modes."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    expected = {"fine": [], "coarse": []}
    for name, n in (("train", n_train), ("test", n_test)):
        batch, x = cifar_batch(rng, n, ["coarse_labels", "fine_labels"], [20, 100], name)
        (folder / name).write_bytes(py2_pickle(batch))
        for mode in expected:
            expected[mode].append((x, np.array(batch[f"{mode}_labels"]).reshape(-1, 1)))
    (folder / "meta").write_bytes(py2_pickle({"fine_label_names": ["apple"] * 100}))
    return expected


def make_tar(source_root, folder_name, archive, mode="w:gz"):
    with tarfile.open(archive, mode) as tar:
        tar.add(source_root / folder_name, arcname=folder_name)


# ---------------------------------------------------------------------------
# Keras 3 as the oracle


@pytest.fixture(scope="module")
def keras_modules(tmp_path_factory):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with pytest.MonkeyPatch.context() as patch:
        # Importing Keras writes $KERAS_HOME/keras.json: never the real one.
        patch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_import")))
        pytest.importorskip("keras")
        from keras.src.backend import config
        from keras.src.datasets import cifar10 as k_cifar10
        from keras.src.datasets import cifar100 as k_cifar100
        from keras.src.datasets import fashion_mnist as k_fashion_mnist
        from keras.src.datasets import mnist as k_mnist
        from keras.src.utils import file_utils
    return SimpleNamespace(config=config, file_utils=file_utils, mnist=k_mnist,
                           fashion_mnist=k_fashion_mnist, cifar10=k_cifar10,
                           cifar100=k_cifar100)


def _no_network(url, *args, **kwargs):
    raise AssertionError(f"Keras tried to download {url}")


@pytest.fixture
def keras(keras_modules, datadir, monkeypatch):
    """Keras' loaders on this test's cache, accepting any hash, never downloading."""
    monkeypatch.setattr(keras_modules.config, "_KERAS_DIR", str(datadir.parent))
    monkeypatch.setattr(keras_modules.config, "_IMAGE_DATA_FORMAT", "channels_last")
    monkeypatch.setattr(keras_modules.file_utils, "validate_file", lambda *a, **k: True)
    monkeypatch.setattr(keras_modules.file_utils, "urlretrieve", _no_network)

    def load(name, **kwargs):
        with warnings.catch_warnings():
            # numpy 2 deprecates numpy.core, which Keras imports to unpickle CIFAR
            warnings.simplefilter("ignore", DeprecationWarning)
            return getattr(keras_modules, name).load_data(**kwargs)
    return load


def test_mnist_is_keras_mnist(keras, datadir):
    expected = make_mnist(datadir / "mnist.npz")
    with pytest.warns(UserWarning, match=HASH_WARNING):
        ours = mnist.load_data()
    assert_same(ours, keras("mnist"))
    assert_same(ours, expected)


def test_fashion_mnist_is_keras_fashion_mnist(keras, datadir):
    expected = make_fashion(datadir / "fashion-mnist")
    ours = fashion_mnist.load_data()  # no published hash: no warning
    assert_same(ours, keras("fashion_mnist"))
    assert_same(ours, expected)
    assert ours[0][0].flags.writeable


def test_cifar10_is_keras_cifar10(keras, datadir, tmp_path):
    # Keras 3 hard-codes 10,000 images per training batch.
    expected = make_cifar10(tmp_path / "src", per_batch=10_000, n_test=50)
    # Keras 3's layout: the archive, which Keras extracts into cifar-10-batches-py-target/
    make_tar(tmp_path / "src", "cifar-10-batches-py",
             datadir / "cifar-10-batches-py-target_archive", mode="w")
    theirs = keras("cifar10")
    assert (datadir / "cifar-10-batches-py-target" / "cifar-10-batches-py").is_dir()
    ours = cifar10.load_data()  # from Keras' extracted folder: no hash, so no warning
    assert ours[0][0].flags.c_contiguous and ours[0][1].dtype == np.uint8
    assert_same(ours, theirs)
    assert_same([ours[1]], [expected[1]])  # and the made-up test images themselves


def test_cifar100_is_keras_cifar100_in_both_label_modes(keras, datadir, tmp_path):
    expected = make_cifar100(tmp_path / "src")
    make_tar(tmp_path / "src", "cifar-100-python", datadir / "cifar-100-python-target_archive")
    for mode in ("fine", "coarse"):
        theirs = keras("cifar100", label_mode=mode)
        ours = cifar100.load_data(label_mode=mode)
        assert_same(ours, theirs)
        assert_same(ours, expected[mode])
        assert ours[0][1].dtype == np.int64  # as Keras' (its docstring says uint8)


# ---------------------------------------------------------------------------
# Every place a CIFAR copy may lie in the cache


CIFAR_LAYOUTS = {
    "tf.keras folder": "cifar-10-batches-py",
    "Keras 3 folder": "cifar-10-batches-py-target/cifar-10-batches-py",
    "tf.keras archive": "cifar-10-batches-py.tar.gz",
    "Keras 3 archive": "cifar-10-batches-py-target_archive",
    "the download's own name": "cifar-10-python.tar.gz",
}


@pytest.mark.parametrize("layout", CIFAR_LAYOUTS)
def test_cifar10_is_read_from_every_cache_layout(datadir, tmp_path, layout):
    expected = make_cifar10(tmp_path / "src")
    target = datadir / CIFAR_LAYOUTS[layout]
    if layout.endswith("folder"):
        target.parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / "cifar-10-batches-py").rename(target)
        ours = cifar10.load_data()
    else:
        make_tar(tmp_path / "src", "cifar-10-batches-py", target)
        with pytest.warns(UserWarning, match=HASH_WARNING) as record:
            ours = cifar10.load_data()
        assert str(target) in str(record[0].message)
        assert record[0].filename == __file__  # points at the caller
        assert files_under(datadir) == [CIFAR_LAYOUTS[layout]]  # read in place
    assert_same(ours, expected)


def test_an_incomplete_cifar_folder_falls_back_to_the_archive(datadir, tmp_path):
    expected = make_cifar10(tmp_path / "src")
    make_tar(tmp_path / "src", "cifar-10-batches-py", datadir / "cifar-10-batches-py.tar.gz")
    (datadir / "cifar-10-batches-py").mkdir()
    (datadir / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"half an extraction")
    with pytest.warns(UserWarning, match=HASH_WARNING):
        assert_same(cifar10.load_data(), expected)


# ---------------------------------------------------------------------------
# Downloads


def test_mnist_downloads_once_checks_the_hash_and_caches(datadir, server, monkeypatch,
                                                        capsys):
    root, url = server
    expected = make_mnist(root / "mnist.npz")
    monkeypatch.setattr(mnist, "ORIGIN", url + "mnist.npz")
    monkeypatch.setattr(mnist, "SHA256", sha256(root / "mnist.npz"))
    assert_same(mnist.load_data(), expected)
    out = capsys.readouterr().out
    assert f"Downloading data from {url}mnist.npz" in out and "[====" in out
    assert (datadir / "mnist.npz").read_bytes() == (root / "mnist.npz").read_bytes()
    (root / "mnist.npz").unlink()  # the second call reads the cache
    assert_same(mnist.load_data(), expected)
    assert "Downloading" not in capsys.readouterr().out


def test_fashion_mnist_downloads_its_four_files(datadir, server, monkeypatch):
    root, url = server
    expected = make_fashion(root)
    monkeypatch.setattr(fashion_mnist, "ORIGIN", url)
    assert_same(fashion_mnist.load_data(), expected)
    assert files_under(datadir) == sorted(f"fashion-mnist/{n}" for n in fashion_mnist.FILES)


@pytest.mark.parametrize("module", [cifar10, cifar100], ids=["cifar10", "cifar100"])
def test_cifar_downloads_and_extracts_as_tf_keras(datadir, server, monkeypatch, tmp_path,
                                                  module):
    root, url = server
    if module is cifar10:
        expected, folder = make_cifar10(tmp_path / "src"), "cifar-10-batches-py"
    else:
        expected, folder = make_cifar100(tmp_path / "src")["coarse"], "cifar-100-python"
    archive = root / os.path.basename(module.ORIGIN)
    make_tar(tmp_path / "src", folder, archive)
    monkeypatch.setattr(module, "ORIGIN", url + archive.name)
    monkeypatch.setattr(module, "SHA256", sha256(archive))
    kwargs = {} if module is cifar10 else {"label_mode": "coarse"}
    assert_same(module.load_data(**kwargs), expected)
    assert (datadir / f"{folder}.tar.gz").read_bytes() == archive.read_bytes()
    assert (datadir / folder).is_dir()


@pytest.mark.parametrize("module", [mnist, cifar10], ids=["mnist", "cifar10"])
def test_a_download_with_the_wrong_hash_is_an_error_and_leaves_nothing(
        datadir, server, monkeypatch, tmp_path, module):
    root, url = server
    if module is mnist:
        served = root / "mnist.npz"
        make_mnist(served)
    else:
        make_cifar10(tmp_path / "src")
        served = root / "cifar-10-python.tar.gz"
        make_tar(tmp_path / "src", "cifar-10-batches-py", served)
    monkeypatch.setattr(module, "ORIGIN", url + served.name)  # the published hash stays
    with pytest.raises(ValueError, match="does not have the published sha256") as exc:
        module.load_data()
    assert module.SHA256 in str(exc.value) and url + served.name in str(exc.value)
    assert files_under(datadir) == []


@pytest.mark.parametrize("module, where", [
    (mnist, "mnist.npz"),
    (fashion_mnist, "fashion-mnist/train-labels-idx1-ubyte.gz"),
    (cifar10, "cifar-10-batches-py.tar.gz"),
    (cifar100, "cifar-100-python.tar.gz"),
], ids=["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_offline_the_error_says_which_file_to_put_where(datadir, module, where):
    with pytest.raises(OSError) as exc:
        module.load_data()
    message = str(exc.value)
    url = module.ORIGIN + (fashion_mnist.FILES[0] if module is fashion_mnist else "")
    assert f"download {url} on another machine and copy it to {datadir / where}" in message
    assert "URL fetch failure" in message and "Connection refused" in message
    if module is fashion_mnist:  # the other three files are named too
        assert all(module.ORIGIN + name in message for name in module.FILES)
    assert files_under(datadir) == []


def test_a_cached_file_with_another_hash_is_used_with_a_warning(datadir):
    expected = make_mnist(datadir / "mnist.npz")
    with pytest.warns(UserWarning, match=HASH_WARNING) as record:
        ours = mnist.load_data()  # the origin refuses connections: no download was tried
    message = str(record[0].message)
    assert str(datadir / "mnist.npz") in message and mnist.SHA256 in message
    assert sha256(datadir / "mnist.npz") in message and "delete it" in message
    assert record[0].filename == __file__
    assert_same(ours, expected)


def test_mnist_path_argument(datadir, tmp_path):
    expected = make_mnist(datadir / "other.npz", n_train=3, n_test=2)
    with pytest.warns(UserWarning, match=HASH_WARNING):
        assert_same(mnist.load_data(path="other.npz"), expected)
    elsewhere = tmp_path / "elsewhere.npz"
    expected = make_mnist(elsewhere, n_train=4, n_test=1)
    with pytest.warns(UserWarning, match=HASH_WARNING):
        assert_same(mnist.load_data(path=elsewhere), expected)  # absolute, as tf.keras 2.4


def test_cifar100_label_mode_is_checked():
    with pytest.raises(ValueError, match="`label_mode` must be one of 'fine', 'coarse'"):
        cifar100.load_data(label_mode="medium")


# ---------------------------------------------------------------------------
# Broken and hostile files


def _npz_with(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name + ".npy", payload)


def _npy_header(shape, descr="|u1"):
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _mnist_cases(path):
    make_mnist(path)
    good = path.read_bytes()
    arrays = dict(np.load(path))
    buffer = io.BytesIO()
    np.save(buffer, arrays["x_train"])
    return {
        "truncated": lambda: path.write_bytes(good[:len(good) // 2]),
        "not a zip": lambda: path.write_bytes(b"<html>404 Not Found</html>"),
        "an array missing": lambda: _npz_with(path, {"x_train": buffer.getvalue()}),
        "a header claiming 800 TB": lambda: _npz_with(path, {
            "x_train": _npy_header((10**12, 28, 28)) + b"\x00" * 64}),
        "an object array": lambda: _npz_with(path, {
            "x_train": _npy_header((2,), "|O") + pickle.dumps([1, 2])}),
        "a flipped byte": lambda: path.write_bytes(
            good[:len(good) // 2] + bytes([good[len(good) // 2] ^ 0xFF])
            + good[len(good) // 2 + 1:]),
    }


MNIST_CASES = ["truncated", "not a zip", "an array missing", "a header claiming 800 TB",
               "an object array", "a flipped byte"]


def assert_clear_error(exc, path, delete="delete it"):
    message = str(exc.value)
    assert str(path) in message and delete in message and "load_data() again" in message


@pytest.mark.parametrize("case", MNIST_CASES)
def test_a_broken_mnist_file_is_a_clear_error(datadir, case):
    path = datadir / "mnist.npz"
    _mnist_cases(path)[case]()
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # its hash is not the published one
            with pytest.raises(ValueError, match="is not a valid MNIST .npz file") as exc:
                mnist.load_data()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_clear_error(exc, path)
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB to refuse a broken file"


FASHION_CASES = {
    "truncated": lambda data: data[:len(data) // 2],
    "not gzip": lambda data: b"<html>404 Not Found</html>",
    "a bad CRC": lambda data: data[:-8] + bytes([data[-8] ^ 1]) + data[-7:],
    "a header claiming 4 G images": lambda data: gzip.compress(
        struct.pack(">HBBIII", 0, 8, 3, 2**32 - 1, 28, 28) + b"\x00" * 784),
    "a labels header": lambda data: gzip.compress(struct.pack(">HBBI", 0, 8, 1, 3) + b"\x01" * 3),
    "trailing data": lambda data: gzip.compress(gzip.decompress(data) + b"\x00"),
}


@pytest.mark.parametrize("case", FASHION_CASES)
def test_a_broken_fashion_mnist_file_is_a_clear_error(datadir, case):
    make_fashion(datadir / "fashion-mnist")
    path = datadir / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(FASHION_CASES[case](path.read_bytes()))
    with pytest.raises(ValueError, match="is not a valid Fashion-MNIST IDX file") as exc:
        fashion_mnist.load_data()
    assert_clear_error(exc, path)


def test_fashion_mnist_images_and_labels_must_match(datadir):
    make_fashion(datadir / "fashion-mnist")
    (datadir / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="5 images but 3 labels"):
        fashion_mnist.load_data()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file


class _ShortArray:
    """Pickles as a (3, 3072) uint8 array with 100 bytes of data."""

    def __reduce__(self):
        reconstruct = np.zeros(1).__reduce__()[0]
        return (reconstruct, (np.ndarray, (0,), b"b"),
                (1, (3, 3072), np.dtype(np.uint8), False, b"\0" * 100))


def _batch_cases(tmp_path):
    rng = np.random.default_rng(5)
    batch, _ = cifar_batch(rng, 3, ["labels"], [10], "batch")
    good = py2_pickle(batch)
    marker = str(tmp_path / "pwned")
    return marker, {
        "truncated": good[:len(good) // 2],
        "not a pickle": b"<html>404 Not Found</html>",
        "a 1 TB byte string": b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"tiny",
        "a list": py2_pickle([1, 2, 3]),
        "labels missing": py2_pickle({k: v for k, v in batch.items() if k != "labels"}),
        "too few labels": py2_pickle({**batch, "labels": batch["labels"][:2]}),
        "a label out of range": py2_pickle({**batch, "labels": [0, 1, 10]}),
        "float images": py2_pickle({**batch, "data": batch["data"].astype(np.float32)}),
        "images of the wrong size": py2_pickle({**batch, "data": batch["data"][:, :100]}),
        "an object array": py2_pickle({**batch, "data": np.array([None, 1], dtype=object)}),
        "short array data": py2_pickle({**batch, "data": _ShortArray()}),
        "code to run": pickle.dumps({"data": _Evil(marker), "labels": [1]}, protocol=2),
        "code to run by protocol 4": pickle.dumps({"data": _Evil(marker)}, protocol=4),
        "os.system": b"cos\nsystem\n(S'touch " + marker.encode() + b"'\ntR.",
    }


BATCH_CASES = ["truncated", "not a pickle", "a 1 TB byte string", "a list", "labels missing",
               "too few labels", "a label out of range", "float images",
               "images of the wrong size", "an object array", "short array data",
               "code to run", "code to run by protocol 4", "os.system"]


@pytest.mark.parametrize("case", BATCH_CASES)
def test_a_broken_or_hostile_cifar_batch_is_refused(datadir, tmp_path, case):
    make_cifar10(datadir)
    marker, cases = _batch_cases(tmp_path)
    path = datadir / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(cases[case])
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="is not a valid CIFAR-10 batch") as exc:
            cifar10.load_data()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_clear_error(exc, path, f"delete the folder {datadir / 'cifar-10-batches-py'}")
    assert not os.path.exists(marker)
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB to refuse a broken batch"
    if case in ("code to run", "code to run by protocol 4"):
        assert "asks to run io.open" in str(exc.value) and "refused" in str(exc.value)
    if case == "os.system":
        assert "asks to run os.system" in str(exc.value)


@pytest.mark.parametrize("cut", [0.3, 0.99])
def test_a_truncated_cifar_archive_is_a_clear_error(datadir, tmp_path, cut):
    make_cifar100(tmp_path / "src")
    archive = datadir / "cifar-100-python.tar.gz"
    make_tar(tmp_path / "src", "cifar-100-python", archive)
    data = archive.read_bytes()
    archive.write_bytes(data[:int(len(data) * cut)])
    with pytest.warns(UserWarning, match=HASH_WARNING):
        with pytest.raises(ValueError, match="is not a valid CIFAR-100 archive") as exc:
            cifar100.load_data()
    assert_clear_error(exc, archive)


def test_a_cifar_archive_without_the_batches_is_a_clear_error(datadir, tmp_path):
    (tmp_path / "src" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "src" / "cifar-10-batches-py" / "readme.html").write_text("hello")
    make_tar(tmp_path / "src", "cifar-10-batches-py", datadir / "cifar-10-batches-py.tar.gz")
    with pytest.warns(UserWarning, match=HASH_WARNING):
        with pytest.raises(ValueError, match="it has no cifar-10-batches-py/data_batch_1"):
            cifar10.load_data()


# ---------------------------------------------------------------------------
# python -m fastconv demo --dataset


def test_demo_trains_on_mnist_from_the_cache(datadir, capsys):
    make_mnist(datadir / "mnist.npz", n_train=64, n_test=16)
    with pytest.warns(UserWarning, match=HASH_WARNING):
        status = demo.main(["--dataset", "mnist", "--epochs", "1", "--max-samples", "40",
                            "--batch-size", "16"])
    out = capsys.readouterr().out
    assert status == 0
    assert "demo: the seed CNN on MNIST (28x28 grayscale digits)" in out
    assert "40 training / 16 test images" in out and "1 epochs" in out
    assert "conv2d_1 (Conv2D)            (None, 26, 26, 64)        18496" in out
    assert "Evaluating on the test images:" in out
    assert out.splitlines()[-2].startswith("test accuracy: ")
    assert "(3 steps," in out.splitlines()[-1]


def test_demo_trains_the_cifar10_cnn(datadir, capsys):
    make_cifar10(datadir, per_batch=4, n_test=6)
    start = time.perf_counter()
    assert demo.main(["--dataset", "cifar10", "--epochs", "1", "--batch-size", "8"]) == 0
    assert time.perf_counter() - start < 10
    out = capsys.readouterr().out
    assert "20 training / 6 test images" in out
    assert "batch_normalization" in out and "dropout" in out
    assert "Total params: 592,042" in out
    assert out.splitlines()[-2].startswith("test accuracy: ")


def test_demo_without_the_data_says_where_to_put_it(datadir, capsys):
    assert demo.main(["--dataset", "fashion_mnist", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("The demo cannot get the fashion_mnist dataset: Fashion-MNIST: ")
    assert f"copy it to {datadir / 'fashion-mnist' / fashion_mnist.FILES[0]}" in err


def test_demo_with_a_corrupt_file_says_to_delete_it(datadir, capsys):
    (datadir / "mnist.npz").write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match=HASH_WARNING):
        assert demo.main(["--dataset", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "is not a valid MNIST .npz file" in err and "delete it" in err
