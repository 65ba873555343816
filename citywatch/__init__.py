"""citywatch: smart-camera traffic monitoring for a city operations centre (AGPL-3.0)."""

__version__ = "0.1.0"
