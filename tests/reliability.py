"""Helpers of the reliability tests (issue 7): run code that might crash in a
child interpreter, and tell whether this process runs under a sanitizer."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

# tools/run_sanitizers.sh sets this (and LD_PRELOADs libasan): tests that
# cannot work under AddressSanitizer (address-space limits) skip, and known
# sanitizer-only findings are expected failures there.
SANITIZED = os.environ.get("FASTCONV_SANITIZED", "") == "1" or \
    "asan" in os.environ.get("LD_PRELOAD", "")


def run_python(code: str, timeout: float = 120.0, env: dict = None) -> str:
    """Run ``code`` in a fresh interpreter; fail the test on a signal (a crash),
    a non-zero exit or a hang past ``timeout``. Returns stdout."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the child hung for more than {timeout} s:\n{exc.stderr}") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise AssertionError(f"the child crashed with {name}:\n{proc.stderr[-6000:]}")
    assert proc.returncode == 0, (f"the child exited with status {proc.returncode}:\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout


def result_lines(stdout: str) -> list:
    """The ``RESULT ...`` lines a child printed, without the prefix."""
    return [line[len("RESULT "):] for line in stdout.splitlines() if line.startswith("RESULT ")]
