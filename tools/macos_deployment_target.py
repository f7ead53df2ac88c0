"""Print the MACOSX_DEPLOYMENT_TARGET a fastconv macOS wheel must declare.

The wheel bundles Homebrew's libomp (delocate copies it in), and delocate
refuses a wheel whose declared macOS version is older than a library inside
it. Homebrew builds libomp for the macOS of the machine it runs on, so the
target is the minimum macOS recorded in libomp.dylib (LC_BUILD_VERSION
minos), or this machine's major macOS version when that cannot be read.
Used by the cibuildwheel configuration in pyproject.toml:

    MACOSX_DEPLOYMENT_TARGET = "$(python3 tools/macos_deployment_target.py)"
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from typing import Optional


def libomp_path() -> str:
    prefix = os.environ.get("LIBOMP_PREFIX") or os.environ.get("FASTCONV_LIBOMP_PREFIX")
    if not prefix:
        try:
            brew = subprocess.run(["brew", "--prefix"], capture_output=True, text=True, check=True)
            prefix = os.path.join(brew.stdout.strip(), "opt", "libomp")
        except (OSError, subprocess.CalledProcessError):
            return ""
    return os.path.join(prefix, "lib", "libomp.dylib")


def minos(dylib: str) -> Optional[str]:
    """The `minos` (or, for old binaries, `version` of LC_VERSION_MIN_MACOSX)."""
    if not os.path.isfile(dylib):
        return None
    try:
        out = subprocess.run(["otool", "-l", dylib], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    found = re.findall(r"^\s*(?:minos|version)\s+(\d+(?:\.\d+)*)\s*$", out, re.MULTILINE)
    return max(found, key=lambda v: tuple(int(p) for p in v.split("."))) if found else None


def main() -> int:
    target = minos(libomp_path())
    if target is None:
        major = (platform.mac_ver()[0] or "11.0").split(".")[0]
        target = f"{major}.0"
    major, minor = (int(p) for p in (target.split(".") + ["0"])[:2])
    # From macOS 11 on, wheel tags carry the major version only: a library
    # that needs 14.2 makes the wheel a macOS 15 wheel.
    if major >= 11 and minor > 0:
        major, minor = major + 1, 0
    print(f"{major}.{minor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
