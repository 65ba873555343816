"""The server's storage, one module per job: ``database`` (engine, sessions, migrations), ``models``
(tables), ``events`` (the event writer and its insert hooks), ``dead_letters``, ``watermarks``,
``cameras``, ``keys``, ``retention``, ``history`` (rollup reads), ``incidents`` (incident tables), and
``store`` (the facade that composes them for ingest and the API)."""
