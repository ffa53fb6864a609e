"""Builds the Cython DSP in native/ as extension modules of appliance.native."""
from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3", "-ffast-math", "-fno-finite-math-only"]

extensions = [
    Extension(f"appliance.native.{name}", [f"native/{name}.pyx"], extra_compile_args=COMPILE_ARGS)
    for name in ("vad", "conversation")
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
