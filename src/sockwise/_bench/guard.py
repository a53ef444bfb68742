"""The guard's cost, for ``sockwise bench``: one tick vs psutil, CPU share, origin recording.

The measuring code lives with the guard (:mod:`sockwise.guard._bench`); this module gives it
the name the runner looks for.
"""

from sockwise.guard._bench import run, table

__all__ = ["run", "table"]
