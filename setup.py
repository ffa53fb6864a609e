"""Builds the Cython DSP in native/ as extension modules of appliance.native."""
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

COMPILE_ARGS = ["-O3", "-ffast-math", "-fno-finite-math-only"]

extensions = [
    Extension(f"appliance.native.{name}", [f"native/{name}.pyx"], extra_compile_args=COMPILE_ARGS)
    for name in ("vad", "conversation")
]

setup(
    # models/ (manifest + converter) installs as appliance_models, so an installed appliance
    # can still build its speech model.
    packages=find_packages(include=["appliance", "appliance.*"]) + ["appliance_models"],
    package_dir={"appliance_models": "models"},
    package_data={"appliance": ["py.typed", "dictionaries/*/*.toml", "web/templates/*.html",
                               "web/static/*", "simulate/*.toml"],
                  "appliance_models": ["manifest.toml"]},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
