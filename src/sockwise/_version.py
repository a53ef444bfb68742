"""The installed version of sockwise."""

__version__ = "0.1.0"
