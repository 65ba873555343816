"""``python -m commands`` is the ``citywatch`` command."""

from commands.cli import entrypoint

entrypoint()
