"""``python -m server -c config.yaml [--host H] [--port P] [--no-ingest]``: run the server alone."""

from __future__ import annotations

import argparse
import logging
import sys

from citywatch.config import CitywatchConfig, ConfigError, load_config
from server.runner import serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    p.add_argument("-c", "--config", help="YAML configuration (default: built-in defaults)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--no-ingest", action="store_true", help="API and dashboard only, no MQTT")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config) if args.config else CitywatchConfig()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    serve(config, host=args.host, port=args.port, ingest=not args.no_ingest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
