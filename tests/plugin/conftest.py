"""The plugin tests run inner pytest sessions with pytester."""

pytest_plugins = ["pytester"]
