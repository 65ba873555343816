"""citywatch server: ingests edge events from MQTT, stores them, serves the API and the dashboard.

Entry points: ``server.app.create_app`` (FastAPI factory), ``server.storage.store.Store`` (storage),
``server.ingest.Ingest`` (MQTT subscriber) and ``server.runner`` (run it, or run it in a thread).
Nothing is created at import time.
"""
