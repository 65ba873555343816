"""Server side of forecasting: history from the rollups, the refresh schedule, stored forecasts, flow
anomaly incidents and count imports. The model itself lives in ``server.forecast`` (the core); this
package only feeds it the server's data and keeps what it returns."""
