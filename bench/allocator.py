"""Kept freed memory (app/allocator.py) against glibc's defaults: one HTTP client, same run.

    .venv/bin/python -m bench.allocator [--movies 48] [--rounds 3]      # needs ../shared
    .venv/bin/python -m bench.allocator --device cuda --encoders production   # gpu.sh allocator

Two real servers with the dev encoders, alike but for MOVIEREC_MALLOC_KEEP_FREED_MIB (the
default, and 0 = glibc's defaults), and the bare per-movie encoder forward in this process, in
alternating rounds so that this machine's drift hits all three alike. Per round: movies/s, the
server's minor page faults per movie and its CPU cores spent in the kernel; resident memory
after the last round.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from statistics import median

from bench.common import rss_mib, save
from bench.ingest import (
    add_batch_arguments,
    bare_forward,
    bare_inputs,
    batch_from_args,
    clients_pass,
    encoder_settings,
    ingest_server,
    post_warm,
    settings_from_env,
)

VARIANTS = {"kept": {}, "glibc_defaults": {"MOVIEREC_MALLOC_KEEP_FREED_MIB": "0"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_batch_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batch = batch_from_args(args)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        work = Path(tmp)
        models = encoder_settings(args.encoders, work) | {"MOVIEREC_DEVICE": args.device}
        from app.search.embedder import Embedder

        emb = Embedder.from_settings(settings_from_env(models, work / "bare"))
        texts, pixels = bare_inputs(emb, batch)
        started = {}
        for name, env in VARIANTS.items():
            started[name] = servers.enter_context(ingest_server(models | env, work / name, work))
            post_warm(started[name], batch)
        rounds = []
        for r in range(args.rounds):
            bare = bare_forward(emb, texts, pixels, args.images_per_movie, 1)["movies_per_s"]
            row: dict = {"bare_movies_per_s": bare}
            for name, server in started.items():
                run = clients_pass(server, batch, 1, prefix=f"r{r}-")
                row[name] = {k: v for k, v in run.items() if k != "seconds"}
            rounds.append(row)
            print(row)
        rss = {name: rss_mib(server.proc.pid) for name, server in started.items()}
    kept_vs_defaults = [
        r["kept"]["movies_per_s"] / r["glibc_defaults"]["movies_per_s"] for r in rounds
    ]
    results = {
        "device": args.device,
        "encoders": args.encoders,
        "movies": len(batch),
        "images_per_movie": args.images_per_movie,
        "rounds": rounds,
        "server_rss_mib_end": rss,
        "kept_vs_glibc_defaults": {
            "per_round": kept_vs_defaults,
            "median": median(kept_vs_defaults),
        },
    }
    for name in VARIANTS:
        ratios = [r[name]["movies_per_s"] / r["bare_movies_per_s"] for r in rounds]
        results[f"{name}_vs_bare"] = {"per_round": ratios, "median": median(ratios)}
    for k, v in results.items():
        print(k, v)
    suffix = "" if args.encoders == "dev" else f"-{args.encoders}"
    print("wrote", save(f"allocator-{args.device.replace(':', '')}{suffix}", results))


if __name__ == "__main__":
    main()
