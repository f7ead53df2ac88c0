"""Build of fastconv's compiled extension (metadata lives in pyproject.toml).

One extension, ``fastconv._kernels``: the Cython binding plus the C sources
in ``csrc/``. The per-ISA micro-kernels (``csrc/kernels_avx2.c``,
``csrc/kernels_avx512.c``) are compiled with their own instruction-set flags
and linked in; everything else is compiled for the baseline, and
``csrc/cpu.c`` picks a path at run time. No ``-march=native`` unless
``FASTCONV_NATIVE=1``.

Environment switches:
  FASTCONV_FAIL_NO_OPENMP=1   a compiler without OpenMP is an error (CI sets it)
  FASTCONV_NATIVE=1           add -march=native (local builds only)
  FASTCONV_SANITIZE=1         AddressSanitizer + UndefinedBehaviorSanitizer build
  FASTCONV_DEBUG_CYTHON=1     bounds checks in the Cython layer
"""
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"
BASE_SOURCES = [f"{CSRC}/{name}" for name in ("common.c", "cpu.c", "conv2d.c", "pool2d.c",
                                              "kernels_generic.c")]
HEADERS = [f"{CSRC}/{name}" for name in ("fastconv.h", "fc_internal.h", "kernels_impl.h",
                                         "kernels_table.h")]
# name -> (source, macro, GCC/Clang flags, MSVC flags)
ISA_SOURCES = {
    "avx2": (f"{CSRC}/kernels_avx2.c", "FC_HAVE_AVX2", ["-mavx2", "-mfma"], ["/arch:AVX2"]),
    "avx512": (f"{CSRC}/kernels_avx512.c", "FC_HAVE_AVX512",
               ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
               ["/arch:AVX512"]),
}


def env_flag(name):
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def is_x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


OPENMP_TEST = textwrap.dedent("""
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n == omp_get_max_threads());
        return 0;
    }
""")


class BuildExt(build_ext):
    """Adds OpenMP when the compiler has it and the per-ISA kernel objects."""

    def _openmp_flags(self):
        if self.compiler.compiler_type == "msvc":
            return ["/openmp"], []
        if sys.platform == "darwin":
            # Apple clang: OpenMP through the preprocessor and libomp.
            return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
        return ["-fopenmp"], ["-fopenmp"]

    def _check_openmp(self, compile_flags, link_flags):
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(tmp, "omp_test.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=compile_flags)
            exe = os.path.join(tmp, "omp_test")
            self.compiler.link_executable(objs, exe, extra_postargs=link_flags)
            out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
            return out.returncode == 0 and out.stdout.strip() == "1"
        except Exception as exc:  # any compile, link or run failure means no OpenMP
            print(f"fastconv: OpenMP test failed: {exc}")
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        base = ["/O2"] if msvc else ["-O3", "-fno-math-errno"]
        if env_flag("FASTCONV_NATIVE") and not msvc:
            base.append("-march=native")
        link = []
        if env_flag("FASTCONV_SANITIZE") and not msvc:
            san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
            base = [f for f in base if not f.startswith("-O")] + san
            link += ["-fsanitize=address,undefined"]

        omp_compile, omp_link = self._openmp_flags()
        if self._check_openmp(omp_compile, omp_link):
            print("fastconv: building with OpenMP")
        else:
            message = ("fastconv: the compiler does not support OpenMP; building the serial "
                       "fallback. Kernels will use one thread.")
            if env_flag("FASTCONV_FAIL_NO_OPENMP"):
                raise RuntimeError(message + " (FASTCONV_FAIL_NO_OPENMP is set)")
            warnings.warn(message)
            print("WARNING: " + message)
            omp_compile, omp_link = [], []

        for ext in self.extensions:
            ext.extra_compile_args = base + omp_compile + list(ext.extra_compile_args or [])
            ext.extra_link_args = link + omp_link + list(ext.extra_link_args or [])
            if is_x86():
                for name, (src, macro, flags, msvc_flags) in ISA_SOURCES.items():
                    objs = self.compiler.compile(
                        [src], output_dir=self.build_temp,
                        include_dirs=ext.include_dirs,
                        extra_postargs=ext.extra_compile_args + (msvc_flags if msvc else flags),
                        depends=HEADERS)
                    ext.extra_objects = list(ext.extra_objects or []) + objs
                    ext.define_macros = list(ext.define_macros or []) + [(macro, "1")]
        super().build_extensions()


directives = {
    "language_level": 3,
    "boundscheck": env_flag("FASTCONV_DEBUG_CYTHON"),
    "wraparound": False,
    "initializedcheck": env_flag("FASTCONV_DEBUG_CYTHON"),
    "cdivision": True,
}

extension = Extension(
    "fastconv._kernels",
    sources=["src/fastconv/_kernels.pyx"] + BASE_SOURCES,
    include_dirs=[CSRC, np.get_include()],
    depends=HEADERS + [v[0] for v in ISA_SOURCES.values()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                   ("FC_NUMPY_BUILD_VERSION", f'"{np.__version__}"')],
)

setup(
    ext_modules=cythonize([extension], compiler_directives=directives),
    cmdclass={"build_ext": BuildExt},
)
