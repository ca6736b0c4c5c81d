"""``python -m flask_dualtoken gen-secret``: needs no app and no configuration."""

from __future__ import annotations

import argparse

from .cli import new_secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flask_dualtoken")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("gen-secret", help="print a new random secret for DUALTOKEN_SECRET_KEY")
    parser.parse_args(argv)
    print(new_secret())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
