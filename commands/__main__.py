"""``python -m citywatch`` is the ``citywatch`` command."""

from citywatch.cli import entrypoint

entrypoint()
