"""The floors in pyproject.toml are the versions ``nox -s minversions`` really tests."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
#: Extras that only gather others or serve the project's own tooling.
_AGGREGATE = {"all", "bench", "test", "dev"}


def _floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors: dict[str, Version] = {}
    for extra, requirements in project["optional-dependencies"].items():
        if extra in _AGGREGATE:
            continue
        for text in requirements:
            requirement = Requirement(text)
            (spec,) = requirement.specifier  # one ">=" floor per runtime dependency
            assert spec.operator == ">=", f"{extra}: {text} should state a floor with >="
            name = canonicalize_name(requirement.name)
            assert floors.get(name, Version(spec.version)) == Version(spec.version), text
            floors[name] = Version(spec.version)
    return floors


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.split(r"==", line)
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_floor_is_pinned_by_the_minversions_session() -> None:
    floors, pins = _floors(), _pins()
    assert floors, "no floors found in pyproject.toml"
    assert {name: pins.get(name) for name in floors} == floors


def test_every_pin_is_a_declared_floor() -> None:
    floors, pins = _floors(), _pins()
    # psycopg-binary carries libpq for psycopg: pinned with it, not a separate floor.
    extra = set(pins) - set(floors) - {"psycopg-binary"}
    assert not extra, f"pinned but not a floor in pyproject.toml: {sorted(extra)}"
    assert pins["psycopg-binary"] == pins["psycopg"]
