"""A/B of two service settings: two real servers alike but for some MOVIEREC_* variables.

    .venv/bin/python -m bench.ab --a MOVIEREC_ENCODER_PRECISION=fp32 \
        --b MOVIEREC_ENCODER_PRECISION=bf16                    # needs ../shared (dev encoders)
    .venv/bin/python -m bench.ab --b MOVIEREC_INGEST_BATCH_IMAGES=8 --clients 8 --rounds 3

Both servers run the same code on the same machine and take turns: in each round every client
count posts the same movies to A and to B, in an order that alternates between rounds, so this
shared machine's drift hits both alike. The whole A/B runs twice, once with A's server started
first and once with B's: on session 13's development machine the server started first ran
about 12 % slower with one client whichever build it ran (docs/PERFORMANCE.md section 3; on
session 14's, little), so a one-way A/B can carry that bias. Reports B's movies/s over A's per
round, the median of each start order and the geometric mean of the two medians. Both servers
stay up throughout, so a setting that keeps an idle server busy slows the other one and cannot
be A/B'd this way.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
from pathlib import Path
from statistics import median

from bench.common import save
from bench.ingest import (
    add_batch_arguments,
    batch_from_args,
    clients_pass,
    encoder_settings,
    ingest_server,
    post_warm,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_batch_arguments(parser)
    parser.add_argument("--a", nargs="*", default=[], metavar="NAME=VALUE", help="A's settings")
    parser.add_argument("--b", nargs="*", default=[], metavar="NAME=VALUE", help="B's settings")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=4, help="per start order")
    parser.add_argument("--tag", default="", help="suffix for the results file")
    args = parser.parse_args()
    variants = {"a": settings_from_args(args.a), "b": settings_from_args(args.b)}
    if variants["a"] == variants["b"]:
        parser.error("A and B have the same settings: give --a and/or --b")
    batch = batch_from_args(args)
    orders = {"a_started_first": ("a", "b"), "b_started_first": ("b", "a")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = encoder_settings(args.encoders, work) | {"MOVIEREC_DEVICE": args.device}
        envs = {name: models | settings for name, settings in variants.items()}
        runs = {
            name: ab_rounds(batch, args, envs, order, work / name) for name, order in orders.items()
        }
    results: dict = {
        "settings": variants,
        "encoders": args.encoders,
        "device": args.device,
        "movies": len(batch),
        "images_per_movie": args.images_per_movie,
        "runs": runs,
        "b_vs_a": {str(c): b_vs_a(runs, c) for c in args.clients},
    }
    for clients, ratio in results["b_vs_a"].items():
        print(f"{clients} client(s): B/A movies/s {ratio}")
    print("wrote", save(f"ab{'-' + args.tag if args.tag else ''}", results))


def settings_from_args(pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs -> env. Each NAME must be a service setting: the service ignores an
    unknown MOVIEREC_* variable, and a misspelt one would A/B two identical servers."""
    from app.config import Settings

    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        field = name.removeprefix("MOVIEREC_").lower()
        if not sep or not name.startswith("MOVIEREC_") or field not in Settings.model_fields:
            raise SystemExit(f"expected MOVIEREC_<setting>=VALUE (app/config.py), got {pair!r}")
        settings[name] = value
    return settings


def ab_rounds(
    batch, args: argparse.Namespace, envs: dict, order: tuple[str, str], work: Path
) -> list:
    """Start both servers (`envs`: each one's MOVIEREC_* variables) in `order`, with fresh data
    under `work`, warm each with every movie, then `args.rounds` rounds of every client count on
    both; returns movies/s per round as {"a_1": .., "b_1": .., ...}."""
    rounds = []
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in order:
            servers[name] = stack.enter_context(ingest_server(envs[name], work / name, work))
            post_warm(servers[name], batch)
        for r in range(args.rounds):
            row = {}
            for clients in args.clients:
                for name in order if r % 2 == 0 else order[::-1]:
                    run = clients_pass(servers[name], batch, clients, prefix=f"r{r}-{clients}-")
                    row[f"{name}_{clients}"] = run["movies_per_s"]
            rounds.append(row)
            print(order[0], "started first, round", r, {k: round(v, 2) for k, v in row.items()})
    return rounds


def b_vs_a(runs: dict[str, list], clients: int) -> dict:
    """B's movies/s over A's with this many clients: per round, the median per start order,
    and the geometric mean of those medians (the figure to quote)."""
    out: dict = {}
    for order, rounds in runs.items():
        ratios = [r[f"b_{clients}"] / r[f"a_{clients}"] for r in rounds]
        out[order] = {"per_round": ratios, "median": median(ratios)}
    medians = [v["median"] for v in out.values()]
    out["both_orders"] = math.exp(sum(math.log(m) for m in medians) / len(medians))
    return out


if __name__ == "__main__":
    main()
