"""Build configuration beyond pyproject.toml: the optional C extension ``sockwise._speedups``.

``optional=True``: when it cannot be compiled (no C compiler, no Python headers), the install
goes on and sockwise uses the Python version of the same code (see ``harden/_stdlib.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sockwise._speedups",
            sources=["src/sockwise/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
