"""The sockwise pytest plugin (placeholder while it is being written; it does nothing yet)."""
