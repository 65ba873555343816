"""Alembic migrations of the server database (run programmatically by ``server.store.Store.migrate``)."""
