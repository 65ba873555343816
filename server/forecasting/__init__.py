"""Forecasting and "unusual versus typical" (issue 16), in two layers.

- ``server.forecasting.model``: the pure core (pandas/numpy/LightGBM, no database, web or vision code):
  ``forecaster`` (fit/predict), ``holiday``, ``series`` (UTC ⇄ wall clock), ``anomaly`` (the detector),
  ``backtest`` (the ``citywatch forecast backtest`` harness). It never imports the service modules.
- the service around it: ``history`` (rollups → series), ``refresh`` (the scheduled refresh),
  ``anomaly_watch`` (``flow_anomaly`` incidents), ``service`` (the thread), ``count_import``
  (``citywatch import counts``), ``tables``.
"""
