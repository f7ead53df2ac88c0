"""Build of fastconv's compiled extension (metadata lives in pyproject.toml).

One extension, ``fastconv._kernels``: the Cython binding plus the C sources
in ``csrc/``. The per-ISA micro-kernels (``csrc/kernels_avx2.c``,
``csrc/kernels_avx512.c``) are compiled with their own instruction-set flags
and linked in; everything else is compiled for the baseline, and
``csrc/cpu.c`` picks a path at run time. No ``-march=native`` unless
``FASTCONV_NATIVE=1``.

Environment switches:
  FASTCONV_FAIL_NO_OPENMP=1   a compiler without OpenMP is an error (CI and the
                              wheel builds set it)
  FASTCONV_NATIVE=1           add -march=native (local builds only)
  FASTCONV_SANITIZE=1         AddressSanitizer + UndefinedBehaviorSanitizer build
  FASTCONV_DEBUG_CYTHON=1     bounds checks in the Cython layer
  FASTCONV_LIBOMP_PREFIX=DIR  macOS: where libomp lives (DIR/include/omp.h,
                              DIR/lib/libomp.dylib); Homebrew's is found alone

OpenMP flags per compiler:
  GCC / Clang (Linux)  -fopenmp at compile and link time (libgomp; auditwheel
                       bundles it into manylinux/musllinux wheels)
  Apple Clang (macOS)  -Xpreprocessor -fopenmp at compile time, -lomp at link
                       time. If CPPFLAGS/CFLAGS already hold -fopenmp (the
                       cibuildwheel configuration in pyproject.toml exports
                       CPPFLAGS="-Xpreprocessor -fopenmp"), it is not added a
                       second time, and -lomp is not added when LDFLAGS has it.
  MSVC (Windows)       /openmp (vcomp140.dll; delvewheel bundles it)
The OpenMP probe links with the -L/-l/-Wl,-rpath entries of LDFLAGS too:
distutils leaves LDFLAGS out of the executable link line.
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
                                              "kernels_generic.c", "arena.c",
                                              "elementwise.c", "winograd.c", "depthwise.c",
                                              "batchnorm.c")]
HEADERS = [f"{CSRC}/{name}" for name in ("fastconv.h", "fc_internal.h", "fc_types_impl.h",
                                         "kernels_impl.h", "kernels_table.h",
                                         "kernels_vocab_undef.h", "conv2d_impl.h",
                                         "conv2d_nchw_impl.h",
                                         "pool2d_impl.h", "elementwise_impl.h",
                                         "kernels_pool_impl.h",
                                         "depthwise_impl.h", "kernels_depthwise_impl.h",
                                         "batchnorm_impl.h", "kernels_batchnorm_impl.h")]
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


def _libomp_prefix():
    """macOS: the libomp installation to use when the environment names none."""
    candidates = [os.environ.get("FASTCONV_LIBOMP_PREFIX", ""),
                  "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    for prefix in candidates:
        if prefix and os.path.isfile(os.path.join(prefix, "include", "omp.h")):
            return prefix
    return None


class BuildExt(build_ext):
    """Adds OpenMP when the compiler has it and the per-ISA kernel objects."""

    def _openmp_flags(self):
        """(compile flags, link flags) that turn OpenMP on for this compiler."""
        if self.compiler.compiler_type == "msvc":
            return ["/openmp"], []
        if sys.platform == "darwin":
            # Apple clang has no -fopenmp driver flag: OpenMP goes through the
            # preprocessor, and the runtime is LLVM's libomp.
            env_compile = (os.environ.get("CPPFLAGS", "") + " " + os.environ.get("CFLAGS", "")).split()
            env_link = os.environ.get("LDFLAGS", "").split()
            compile_flags = [] if "-fopenmp" in env_compile else ["-Xpreprocessor", "-fopenmp"]
            link_flags = [] if "-lomp" in env_link else ["-lomp"]
            prefix = _libomp_prefix()
            if prefix:
                include, lib = f"-I{prefix}/include", f"-L{prefix}/lib"
                if include not in env_compile:
                    compile_flags.append(include)
                if lib not in env_link:
                    link_flags.insert(0, lib)
            return compile_flags, link_flags
        return ["-fopenmp"], ["-fopenmp"]

    def _check_openmp(self, compile_flags, link_flags):
        """Compile, link and run a small OpenMP program with these flags."""
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(tmp, "omp_test.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=compile_flags)
            # customize_compiler() puts LDFLAGS on the shared-library link line
            # only; the probe needs its library paths as well (macOS libomp).
            env_link = [f for f in os.environ.get("LDFLAGS", "").split()
                        if f.startswith(("-L", "-l", "-Wl,-rpath"))]
            self.compiler.link_executable(objs, "omp_test", output_dir=tmp,
                                          extra_preargs=env_link, extra_postargs=link_flags)
            exe = os.path.join(tmp, self.compiler.executable_filename("omp_test"))
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
