"""Type stubs of the optional C extension (see ``_speedups.c``)."""

from collections.abc import Callable, Sequence
from typing import Any

def applier(options: Sequence[tuple[int, int, int]], /) -> Callable[[Any], None]: ...
def options_of(apply: Callable[[Any], None], /) -> list[tuple[int, int, int]]: ...
