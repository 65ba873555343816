"""Alembic migrations of the server database (run programmatically by ``server.storage.database.Database.migrate``)."""
