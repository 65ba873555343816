"""citywatch edge: runs beside the cameras, counts traffic and delivers every event to the server.

Flow: ``sources`` (video frames) -> ``vision`` pipeline (detect, track, count) -> ``outbox``
(SQLite, each event gets a per-camera ``seq`` and is stored before it is sent) -> ``mqtt_link``
(QoS 1, persistent session, last will) -> server. The server answers with a retained
``ControlCommitted`` watermark; only then are events deleted, and anything not committed in time is
re-sent. A broker PUBACK is never taken as delivery. ``worker.EdgeWorker`` ties it together.
"""
