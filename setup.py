"""Build nghttp2py._nghttp2 against the system libnghttp2.

Metadata (name, version, extras) lives in pyproject.toml; this file only
describes the extension.  The compiler and linker flags for libnghttp2 come
from NGHTTP2_CFLAGS / NGHTTP2_LIBS when NGHTTP2_LIBS is set (the Makefile
exports what ./configure recorded in config.mk), else from pkg-config.
NGHTTP2PY_DEBUG=1 builds with -O0 -g.
"""
import glob
import os
import shlex
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    import Cython
    from Cython.Build import cythonize
    from Cython.Compiler.Errors import CompileError
    if int(Cython.__version__.split(".")[0]) < 3:
        raise ImportError
except ImportError:
    raise SystemExit(
        "error: Cython >= 3 is required to build nghttp2py; "
        "install it with: python3 -m pip install 'Cython>=3'"
    ) from None

NGHTTP2_MIN = "1.52"
NGHTTP2_HINT = (
    f"error: libnghttp2 >= {NGHTTP2_MIN} not found via pkg-config; "
    "install it with: apt-get install libnghttp2-dev pkg-config"
)
DEBUG = os.environ.get("NGHTTP2PY_DEBUG", "") not in ("", "0")


def pkg_config(*args):
    try:
        out = subprocess.run(
            ["pkg-config", *args, "libnghttp2"],
            check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(NGHTTP2_HINT) from None
    return shlex.split(out)


def nghttp2_args():
    """libnghttp2's compiler and linker arguments: the environment's, else pkg-config's."""
    libs = os.environ.get("NGHTTP2_LIBS", "").strip()
    if libs:
        return shlex.split(os.environ.get("NGHTTP2_CFLAGS", "")) + shlex.split(libs)
    pkg_config(f"--atleast-version={NGHTTP2_MIN}")
    return pkg_config("--cflags", "--libs")


def nghttp2_flags():
    """libnghttp2's arguments sorted into the Extension keywords they belong to."""
    flags = {"include_dirs": [], "library_dirs": [], "libraries": [],
             "define_macros": [], "extra_compile_args": [], "extra_link_args": []}
    for arg in nghttp2_args():
        if arg.startswith("-I"):
            flags["include_dirs"].append(arg[2:])
        elif arg.startswith("-L"):
            flags["library_dirs"].append(arg[2:])
        elif arg.startswith("-l"):
            flags["libraries"].append(arg[2:])
        elif arg.startswith("-D"):
            name, _, value = arg[2:].partition("=")
            flags["define_macros"].append((name, value or None))
        else:
            # The flags do not tell whether an unknown one is for the compiler
            # or the linker; gcc accepts both kinds in either place.
            flags["extra_compile_args"].append(arg)
            flags["extra_link_args"].append(arg)
    return flags


class BuildExt(build_ext):
    """Rebuild everything when switching between debug and release builds.

    Both produce the same .so name, so timestamps alone would keep a stale one.
    """

    def run(self):
        mode = "debug" if DEBUG else "release"
        stamp = os.path.join(self.build_temp, "nghttp2py-build-mode")
        try:
            with open(stamp) as f:
                if f.read() != mode:
                    self.force = True
        except FileNotFoundError:
            self.force = True
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(mode)


flags = nghttp2_flags()
if DEBUG:
    flags["extra_compile_args"] += ["-O0", "-g", "-UNDEBUG"]

extension = Extension(
    "nghttp2py._nghttp2",
    sources=["src/_nghttp2.pyx"],
    depends=sorted(glob.glob("src/*.pxi") + glob.glob("nghttp2py/*.pxd")
                   + glob.glob("include/*.pxd")),
    **flags,
)

try:
    ext_modules = cythonize(
        [extension],
        include_path=["include", "src", "."],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        annotate=os.environ.get("NGHTTP2PY_ANNOTATE") == "1",
        quiet=True,
    )
except CompileError as exc:
    # Cython has printed the errors; a traceback of cythonize adds nothing.
    raise SystemExit(f"error: Cython failed to compile {exc.args[-1]}") from None

setup(
    packages=["nghttp2py", "nghttp2py.client"],
    package_data={"nghttp2py": ["py.typed", "*.pyi"]},
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
