"""Weights in and out under trouble: interrupts, hostile files, odd paths.

``set_weights`` and ``load_weights`` change every weight or none, even when
Ctrl-C comes in the middle; ``load_weights`` checks every header of an
untrusted ``.npz`` before it reads (or allocates) any array; ``atomic_write``
(under ``save_weights``, ``BackupAndRestore`` and ``get_file``) writes
through symbolic links, cleans up after killed writes and names the user's
path in its errors.
"""
from __future__ import annotations

import errno
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

from fastconv import _files, _signals, backend
from fastconv.layers import Conv2D, Dense, Flatten, Input
from fastconv.layers.base import Variable
from fastconv.models import Model, training_utils

try:
    import fcntl
except ImportError:  # Windows: no flock, and Windows keeps open files from deletion
    fcntl = None
needs_flock = pytest.mark.skipif(fcntl is None, reason="no fcntl.flock here")

TWO_GIB = 2 ** 31
MEMORY_BOUND = 50 * 2 ** 20  # what a refused 2 GiB claim may cost at most


@pytest.fixture(autouse=True)
def fresh_names():
    backend.clear_session()
    yield
    backend.clear_session()


@pytest.fixture
def python_sigint():
    """SIGINT handled by Python's default handler (raises KeyboardInterrupt)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def small_model(seed=0):
    """conv kernel (3, 3, 1, 2), bias (2,); dense kernel (8, 3), bias (3,)."""
    backend.set_random_seed(seed)
    inputs = Input((4, 4, 1))
    x = Flatten()(Conv2D(2, 3)(inputs))
    return Model(inputs, Dense(3)(x))


def assert_weights(model, expected):
    got = model.get_weights()
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def shifted(weights, by=1.0):
    return [w + np.float32(by) for w in weights]


# ---------------------------------------------------------------------------
# set_weights: all or nothing, Ctrl-C included

def interrupt_on_call(monkeypatch, n, action):
    """Variable.assign does its work, then ``action()`` on its ``n``-th call."""
    original = Variable.assign
    calls = []

    def assign(self, value):
        calls.append(self.name)
        result = original(self, value)
        if len(calls) == n:
            action()
        return result
    monkeypatch.setattr(Variable, "assign", assign)
    return calls


def raise_keyboard_interrupt():
    raise KeyboardInterrupt


def send_sigint():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)  # a bytecode boundary or two: the handler runs now


@pytest.mark.parametrize("n", [1, 3, 4])
def test_keyboard_interrupt_inside_an_assignment_leaves_every_old_weight(monkeypatch, n):
    model = small_model()
    before = model.get_weights()
    interrupt_on_call(monkeypatch, n, raise_keyboard_interrupt)
    with pytest.raises(KeyboardInterrupt):
        model.set_weights(shifted(before))
    assert_weights(model, before)


def test_keyboard_interrupt_inside_a_layer_set_weights_leaves_its_old_weights(monkeypatch):
    model = small_model()
    dense = model.layers[-1]
    before = dense.get_weights()
    interrupt_on_call(monkeypatch, 2, raise_keyboard_interrupt)
    with pytest.raises(KeyboardInterrupt):
        dense.set_weights(shifted(before))
    assert_weights(dense, before)


def test_sigint_during_set_weights_waits_for_the_block_then_undoes_it(monkeypatch,
                                                                     python_sigint):
    model = small_model()
    before = model.get_weights()
    calls = interrupt_on_call(monkeypatch, 2, send_sigint)
    with pytest.raises(KeyboardInterrupt):
        model.set_weights(shifted(before))
    assert len(calls) == 4  # the signal did not cut the block short ...
    assert_weights(model, before)  # ... which it then cancelled
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model.set_weights(shifted(before))  # and the next call is not affected
    assert_weights(model, shifted(before))


def test_sigint_during_load_weights_keeps_the_old_weights(monkeypatch, python_sigint, tmp_path):
    path = tmp_path / "w.npz"
    small_model(seed=1).save_weights(path)
    model = small_model(seed=2)
    before = model.get_weights()
    interrupt_on_call(monkeypatch, 3, send_sigint)
    with pytest.raises(KeyboardInterrupt):
        model.load_weights(path)
    assert_weights(model, before)


def test_a_failing_cast_changes_nothing():
    model = small_model()
    before = model.get_weights()
    new = shifted(before)
    new[-1] = np.full(3, 1e300)  # float64 that overflows float32: the cast warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="overflow"):
            model.set_weights(new)
    assert_weights(model, before)


def test_variable_assign_casts_before_it_writes():
    variable = Variable(np.zeros(3, np.float32), "v")
    with pytest.raises(ValueError):
        variable.assign(np.array([1.0, "x", 2.0], dtype=object))
    np.testing.assert_array_equal(variable.numpy(), np.zeros(3))
    variable.assign(np.array([1, 2, 3], np.int64))
    assert variable.numpy().dtype == np.float32
    np.testing.assert_array_equal(variable.numpy(), [1, 2, 3])


def test_the_interrupt_guard_lives_below_layers_and_models(python_sigint):
    assert training_utils.defer_keyboard_interrupt is _signals.defer_keyboard_interrupt
    with pytest.raises(KeyboardInterrupt):
        with _signals.defer_keyboard_interrupt() as deferred:
            send_sigint()
            assert deferred.interrupted  # recorded, not raised, inside the block
            reached = True
    assert reached


# ---------------------------------------------------------------------------
# load_weights: hostile files

def members_of(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


def npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape, dtype):
    """An .npy header claiming ``shape``/``dtype``, with none of its data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": tuple(shape)})
    return buffer.getvalue()


def meta_of(members):
    return json.loads(str(np.load(io.BytesIO(members["__fastconv_meta__.npy"]))[()]))


def with_meta(members, meta):
    members["__fastconv_meta__.npy"] = npy(np.array(json.dumps(meta)))


def set_declared_size(path, name, size):
    """Make the zip directory declare ``size`` uncompressed bytes for ``name``."""
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    entries, _, start = struct.unpack_from("<HII", data, end + 10)
    for _ in range(entries):
        assert data[start:start + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, start + 28)
        if data[start + 46:start + 46 + name_len].decode() == name:
            struct.pack_into("<I", data, start + 24, size)
            path.write_bytes(bytes(data))
            return
        start += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"no member {name}")


def bomb_header_claims(path, members):
    members["w3.npy"] = npy_header((TWO_GIB // 4,), np.float32) + b"\0" * 12
    write_members(path, members)


def bomb_directory_claims(path, members):
    write_members(path, members)  # w3 intact, but the directory says 2 GiB
    set_declared_size(path, "w3.npy", TWO_GIB)


def bomb_everything_claims(path, members):
    # Metadata, header and directory agree on 2 GiB: only the model disagrees.
    meta = meta_of(members)
    meta["layers"][1]["weights"][1]["shape"] = [TWO_GIB // 4]
    with_meta(members, meta)
    header = npy_header((TWO_GIB // 4,), np.float32)
    members["w3.npy"] = header + b"\0" * 12
    write_members(path, members)
    set_declared_size(path, "w3.npy", len(header) + TWO_GIB)


def bomb_metadata_claims(path, members):
    header = npy_header((), f"<U{TWO_GIB // 4 - 1}")  # numpy's largest string
    members["__fastconv_meta__.npy"] = header + members["__fastconv_meta__.npy"][128:]
    write_members(path, members)
    set_declared_size(path, "__fastconv_meta__.npy", len(header) + TWO_GIB - 4)


def peak_memory_of(function):
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("make_bomb", [bomb_header_claims, bomb_directory_claims,
                                       bomb_everything_claims, bomb_metadata_claims])
def test_a_member_claiming_2_gib_is_refused_before_it_is_read(tmp_path, make_bomb):
    path = tmp_path / "bomb.npz"
    small_model(seed=1).save_weights(path)
    make_bomb(path, members_of(path))
    assert path.stat().st_size < 10_000
    model = small_model(seed=2)
    before = model.get_weights()
    errors = []

    def load():
        with pytest.raises(ValueError, match="Unable to load weights from") as info:
            model.load_weights(path)
        errors.append(str(info.value))
    assert peak_memory_of(load) < MEMORY_BOUND
    assert str(path) in errors[0]
    assert_weights(model, before)


def test_a_2_gib_layer_the_model_does_not_load_is_never_read(tmp_path):
    """by_name skips a saved layer the model lacks: its (bomb) data stays unread."""
    path = tmp_path / "w.npz"
    source = small_model(seed=1)
    source.save_weights(path)
    members = members_of(path)
    meta = meta_of(members)
    meta["layers"][1]["name"] = "not_in_the_model"
    bomb_everything_claims(path, {**members, "__fastconv_meta__.npy": npy(
        np.array(json.dumps(meta)))})
    backend.clear_session()  # the same layer names again
    model = small_model(seed=2)
    expected = source.get_weights()[:2] + model.get_weights()[2:]
    assert peak_memory_of(lambda: model.load_weights(path, by_name=True)) < MEMORY_BOUND
    assert_weights(model, expected)


def test_object_arrays_are_refused_and_never_unpickled(tmp_path):
    path = tmp_path / "w.npz"
    small_model(seed=1).save_weights(path)
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))
    members = members_of(path)
    members["w2.npy"] = npy(np.array([Trap()] * 3, dtype=object))
    np.load(io.BytesIO(members["w2.npy"]), allow_pickle=True)  # the trap works:
    marker.rmdir()                                               # unpickling springs it
    write_members(path, members)
    model = small_model(seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match="Python objects") as info:
        model.load_weights(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    assert_weights(model, before)


def damage_truncate(data, path):
    return data[:len(data) * 2 // 3]


def data_start(path, name):
    """Where member ``name``'s bytes begin (after its local header)."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(name).header_offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        local = handle.read(30)
    assert local[:4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack_from("<HH", local, 26)
    return offset + 30 + name_len + extra_len


def damage_cut_the_last_array(data, path):
    # The directory survives, the last member loses 6 bytes of its data (and
    # the directory offsets after it no longer match).
    start = data_start(path, "w3.npy") + 128
    return data[:start] + data[start + 6:]


def damage_flip_last_data_byte(data, path):
    data = bytearray(data)
    data[data_start(path, "w3.npy") + 128 + 4] ^= 0xFF  # only the CRC can tell
    return bytes(data)


def damage_magic(data, path):
    data = bytearray(data)
    data[data_start(path, "w2.npy") + 1] ^= 0xFF  # "NUMPY" -> junk
    return bytes(data)


def damage_garbage(data, path):
    return b"PK\x03\x04" + bytes(range(256)) * 4


def damage_empty(data, path):
    return b""


@pytest.mark.parametrize("damage", [damage_truncate, damage_cut_the_last_array,
                                    damage_flip_last_data_byte, damage_magic, damage_garbage,
                                    damage_empty])
def test_truncated_and_corrupted_files_name_the_path_and_change_nothing(tmp_path, damage):
    path = tmp_path / "weights.npz"
    small_model(seed=1).save_weights(path)
    path.write_bytes(damage(path.read_bytes(), path))
    model = small_model(seed=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match="corrupt or not a fastconv weights file") as info:
        model.load_weights(path)
    assert str(path) in str(info.value)
    assert_weights(model, before)


def test_other_valid_npy_encodings_load(tmp_path):
    """Big-endian, Fortran-order and deflated members are read right."""
    path = tmp_path / "w.npz"
    source = small_model(seed=1)
    source.save_weights(path)
    members = members_of(path)
    for index, weight in enumerate(source.get_weights()):
        weight = np.asfortranarray(weight) if index % 2 else weight.astype(">f4")
        members[f"w{index}.npy"] = npy(weight)
    write_members(path, members, zipfile.ZIP_DEFLATED)
    target = small_model(seed=2)
    target.load_weights(path)
    assert_weights(target, source.get_weights())
    assert all(w.dtype == np.float32 and w.dtype.isnative for w in target.get_weights())


# ---------------------------------------------------------------------------
# Saving: symbolic links, leftovers of killed saves, errors naming the path

def test_saving_through_a_symlink_writes_its_target(tmp_path):
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    target, link = elsewhere / "real.npz", tmp_path / "link.npz"
    small_model(seed=1).save_weights(target)
    target.chmod(0o640)
    link.symlink_to(target)
    model = small_model(seed=2)
    model.save_weights(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "store"]
    assert os.listdir(elsewhere) == ["real.npz"]
    loaded = small_model(seed=3)
    loaded.load_weights(target)
    assert_weights(loaded, model.get_weights())


def test_saving_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.npz"
    link.symlink_to("made.npz")
    small_model().save_weights(link)
    assert link.is_symlink() and (tmp_path / "made.npz").is_file()


def test_a_symlink_loop_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as info:
        small_model().save_weights(tmp_path / "a")
    assert info.value.errno == errno.ELOOP and info.value.filename == str(tmp_path / "a")
    assert (tmp_path / "a").is_symlink()


def make_old(path, seconds=3600):
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)


@needs_flock
def test_the_next_save_removes_stale_temporary_files_and_nothing_else(tmp_path):
    path = tmp_path / "w.npz"
    stale = [".w.npz.abcd1234.tmp", ".w.npz.0_9z8y7x.tmp"]
    kept = [".w.npz.abc123.tmp",         # 6 random characters, not 8
            ".w.npz.ABCD1234.tmp",       # not tempfile's characters
            ".w.npz.abcd1234.tmp.bak", "w.npz.abcd1234.tmp", ".w.npz.abcd1234.tmpx",
            ".other.npz.abcd1234.tmp",   # another target's
            ".w.np.abcd1234.tmp", ".xw.npz.abcd1234.tmp",
            ".w.npz.young123.tmp"]       # unlocked but just written: maybe a save starting
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"partial")
        if name != ".w.npz.young123.tmp":
            make_old(tmp_path / name)
    (tmp_path / ".w.npz.dir12345.tmp").mkdir()             # not a regular file
    make_old(tmp_path / ".w.npz.dir12345.tmp")
    (tmp_path / ".w.npz.link1234.tmp").symlink_to("w.npz")  # not a regular file
    make_old(tmp_path / ".w.npz.link1234.tmp")
    locked = tmp_path / ".w.npz.locked12.tmp"               # a live writer's
    locked.write_bytes(b"partial")
    make_old(locked)
    with open(locked, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        small_model().save_weights(path)
    left = set(os.listdir(tmp_path))
    assert left == {"w.npz", *kept, ".w.npz.dir12345.tmp", ".w.npz.link1234.tmp",
                    ".w.npz.locked12.tmp"}
    small_model().save_weights(path)  # the lock is gone now
    assert ".w.npz.locked12.tmp" not in os.listdir(tmp_path)


def test_stale_temporary_files_of_a_symlinks_target_are_removed(tmp_path):
    (tmp_path / "real.npz").write_bytes(b"old")
    (tmp_path / "link.npz").symlink_to("real.npz")
    for name in (".real.npz.abcd1234.tmp", ".link.npz.abcd1234.tmp"):
        (tmp_path / name).write_bytes(b"partial")
        make_old(tmp_path / name)
    with _files.atomic_write(tmp_path / "link.npz") as handle:
        handle.write(b"new")
    assert (tmp_path / "real.npz").read_bytes() == b"new"
    # Temporary files are made beside the target, so only its pattern is ours.
    assert sorted(os.listdir(tmp_path)) == [".link.npz.abcd1234.tmp", "link.npz", "real.npz"]


KILLED_WRITER = """
import sys, time
from fastconv._files import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write(b"half of a file")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def temporary_files(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


@needs_flock
def test_a_killed_save_leaves_a_temp_file_that_the_next_save_removes(tmp_path):
    path = tmp_path / "w.npz"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        (temp,) = temporary_files(tmp_path)
        make_old(tmp_path / temp)
        small_model().save_weights(path)  # the writer is alive: its file stays
        assert temporary_files(tmp_path) == [temp]
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    assert temporary_files(tmp_path) == [temp]  # SIGKILL: no cleanup ran
    make_old(tmp_path / temp)
    small_model().save_weights(path)
    assert os.listdir(tmp_path) == ["w.npz"]


def assert_names_only(error, path):
    message = str(error)
    assert str(path) in message and ".tmp" not in message, message


@pytest.mark.skipif(getattr(os, "geteuid", lambda: -1)() == 0, reason="root writes into read-only directories")
def test_an_unwritable_directory_is_an_error_naming_the_path(tmp_path):
    directory = tmp_path / "read_only"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            small_model().save_weights(directory / "w.npz")
    finally:
        directory.chmod(0o755)
    assert_names_only(info.value, directory / "w.npz")
    assert os.listdir(directory) == []


def test_a_refused_temporary_file_is_an_error_naming_the_path(tmp_path, monkeypatch):
    """What an unwritable directory does, as any user (root included)."""
    real_open = os.open

    def refuse(name, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(name, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError) as info:
        small_model().save_weights(tmp_path / "w.npz")
    assert info.value.errno == errno.EACCES
    assert_names_only(info.value, tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []


def test_real_os_errors_name_the_users_path(tmp_path):
    (tmp_path / "a_file").write_bytes(b"")
    with pytest.raises(NotADirectoryError) as info:  # mkstemp's error, about the temp
        small_model().save_weights(tmp_path / "a_file" / "w.npz")
    assert_names_only(info.value, tmp_path / "a_file" / "w.npz")
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(IsADirectoryError) as info:   # os.replace's, about temp and target
        small_model().save_weights(tmp_path / "a_dir")
    assert_names_only(info.value, tmp_path / "a_dir")
    assert sorted(os.listdir(tmp_path)) == ["a_dir", "a_file"]


def test_a_full_disk_is_an_error_naming_the_path(tmp_path, monkeypatch):
    def full(handle, **arrays):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError) as info:
        small_model().save_weights(tmp_path / "w.npz")
    assert info.value.errno == errno.ENOSPC
    assert_names_only(info.value, tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []


def test_a_new_file_gets_the_umask_permissions(tmp_path):
    previous = os.umask(0o027)
    try:
        with _files.atomic_write(tmp_path / "f") as handle:
            handle.write(b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640
