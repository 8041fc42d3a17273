"""The `movierec` command line: model commands plus the service's serve / migrate / import /
reindex."""

from __future__ import annotations

import argparse
import sys

from model.cli import add_model_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movierec", description="Content-based 'more like this' for video catalogs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from app.commands import add_service_commands

    add_service_commands(sub)
    add_model_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
