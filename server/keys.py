"""``python -m server.keys -c config.yaml add|list|revoke``: manage API keys from a shell (rotation,
first admin key of a fresh install). Keys are stored hashed; ``add`` prints the secret once."""

from __future__ import annotations

import argparse
import sys

from citywatch.config import CitywatchConfig, ConfigError, load_config
from server.auth import ROLES, hash_key, new_key
from server.storage.store import Store


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.keys", description=__doc__)
    p.add_argument("-c", "--config", help="YAML configuration (server.database_url)")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="create a key and print it")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--name", required=True)
    sub.add_parser("list", help="list managed keys")
    r = sub.add_parser("revoke", help="revoke a key by id")
    r.add_argument("id", type=int)
    args = p.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else CitywatchConfig()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = Store.from_config(config)
    try:
        if args.cmd == "add":
            key = new_key(args.role)
            key_id = store.keys.add_api_key(args.role, args.name, hash_key(key), key[: len(args.role) + 8])
            print(f"id {key_id} role {args.role}: {key}")
        elif args.cmd == "list":
            for k in store.keys.list_api_keys():
                state = f"revoked {k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "active"
                print(f"{k['id']:>4}  {k['role']:<8} {k['prefix']:<16} {state:<24} {k['name']}")
        elif args.cmd == "revoke":
            if not store.keys.revoke_api_key(args.id):
                print(f"no active key {args.id}", file=sys.stderr)
                return 1
            print(f"revoked {args.id}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
