"""A process forked after fastconv's kernels ran on several threads runs its
ops (GNU OpenMP would wait forever for the parent's threads): with
multiprocessing's 'fork' start method and with os.fork, the child's result
equals the parent's, on one thread; 'spawn' children keep their threads."""
from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest

import fastconv as fc
from fastconv import ops

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

TIMEOUT_S = 60


def _problem():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((4, 20, 20, 16)).astype(np.float32),
            rng.standard_normal((3, 3, 16, 32)).astype(np.float32))


@pytest.fixture
def team_started():
    """The parent has run a parallel op: its OpenMP team exists."""
    previous = ops.set_num_threads(2)
    x, kernel = _problem()
    yield fc.conv2d(x, kernel)
    ops.set_num_threads(previous)


def _child_conv(queue):
    x, kernel = _problem()
    y = fc.conv2d(x, kernel)
    with pytest.warns(RuntimeWarning, match="forked after"):
        ops.set_num_threads(2)
    queue.put((y, ops.get_num_threads()))


def _child_threads(queue):
    queue.put(ops.get_num_threads())


def test_a_multiprocessing_fork_child_runs_its_ops(team_started):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_conv, args=(queue,))
    child.start()
    try:   # read first: the child cannot exit before its queue is drained
        y, threads = queue.get(timeout=TIMEOUT_S)
    except Exception:
        child.kill()
        pytest.fail(f"the forked child hung for {TIMEOUT_S} s in its first op")
    child.join(TIMEOUT_S)
    assert child.exitcode == 0
    np.testing.assert_array_equal(y, team_started)   # bitwise at any thread count
    assert threads == 1


def test_an_os_fork_child_runs_its_ops(team_started):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: report through the pipe, never return into pytest
        status = 1
        try:
            x, kernel = _problem()
            same = np.array_equal(fc.conv2d(x, kernel), team_started)
            os.write(write_end, b"same" if same else b"diff")
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(f"the os.fork child hung for {TIMEOUT_S} s in its first op")
    assert os.read(read_end, 4) == b"same"
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_spawn_child_keeps_its_threads(team_started, monkeypatch):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: every process has one thread")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)   # the child's default, not a limit
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child_threads, args=(queue,))
    child.start()
    threads = queue.get(timeout=TIMEOUT_S)
    child.join(TIMEOUT_S)
    assert child.exitcode == 0 and threads > 1


def _child_under_a_thread_limit(queue):
    import resource
    # Everything imported and made first: files under root's home are not
    # readable once this process is nobody.
    x, kernel = _problem()
    ops.set_num_threads(1)
    fc.conv2d(x, kernel)
    # Only this process may hold 3 threads: libgomp would exit the process at
    # its first 8-thread team ("Thread creation failed"); fastconv runs on
    # the threads it can have.
    os.setgid(65534)
    os.setuid(65534)       # as nobody: root ignores RLIMIT_NPROC
    resource.setrlimit(resource.RLIMIT_NPROC, (3, 3))
    ops.set_num_threads(8)
    queue.put(fc.conv2d(x, kernel))


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="needs root to drop to an unprivileged user with a thread limit")
def test_when_the_os_refuses_threads_ops_run_on_fewer(team_started, monkeypatch):
    """Three tries: the probe cannot close every race with the kernel's
    thread accounting (a few percent of children still saw libgomp refused
    a thread right after the probe's threads were released); without the
    probe every child dies."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    context = multiprocessing.get_context("spawn")
    deaths = []
    for _ in range(3):
        queue = context.Queue()
        child = context.Process(target=_child_under_a_thread_limit, args=(queue,))
        child.start()
        y, deadline = None, time.monotonic() + TIMEOUT_S / 3
        while y is None and time.monotonic() < deadline:
            try:
                y = queue.get(timeout=0.5)
            except Exception:
                if not child.is_alive():   # died: libgomp exits at once
                    break
        if y is None:
            child.kill()
            child.join(5)
            deaths.append(child.exitcode)
            continue
        child.join(TIMEOUT_S)
        assert child.exitcode == 0
        np.testing.assert_array_equal(y, team_started)
        return
    pytest.fail(f"the child died in each of 3 tries (exit codes {deaths}) instead of running "
                "its op")
