"""Developer sessions: ``nox -s tests lint typecheck docs bench`` (each in its own virtualenv)."""

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the whole test suite (PostgreSQL and network-namespace tests need root here)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


#: Test areas that exercise the third-party libraries whose oldest versions the session pins.
MIN_VERSION_AREAS = [
    "tests/http",
    "tests/psycopg",
    "tests/harden",
    "tests/policy",
    "tests/metrics",
    "tests/guard",
]


@nox.session(python="3.11")
def minversions(session: nox.Session) -> None:
    """Run the integration tests against the oldest supported versions (.ci/min-versions.txt)."""
    session.install("-c", ".ci/min-versions.txt", "-e", ".[test]")
    session.run("pytest", *(session.posargs or MIN_VERSION_AREAS))


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    session.install("ruff")
    paths = ["src", "tests", "benchmarks", "noxfile.py", "docs"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """Type-check src/ with mypy --strict (configured in pyproject.toml)."""
    session.install("-e", ".[all]", "mypy", "types-requests", "types-psutil")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    session.install("-e", ".[dev]")
    session.run(
        "python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Run every benchmark side by side (``nox -s bench -- --quick`` for a short run)."""
    session.install("-e", ".[bench,all]")
    session.run("sockwise", "bench", *session.posargs)


@nox.session(python="3.11")
def urllib3_suite(session: nox.Session) -> None:
    """urllib3's own tests bare, under harden() and with the drop-in classes (``-- --subset ci``).

    Fetches the sdist of the installed urllib3 into ``.cache/urllib3-suite`` and builds an
    isolated virtualenv there; differences must match ``docs/reference/differences.md``.
    """
    session.install("-e", ".[urllib3]")
    args = session.posargs or ["--subset", "full"]
    session.run("python", "tests/compat/run_urllib3_suite.py", *args)
