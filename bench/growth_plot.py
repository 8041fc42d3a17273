"""Draw how each path's cost grows with the catalogue, from bench/results/similar.json.

.venv/bin/python -m bench.growth_plot [--out docs/img/cost_growth.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import RESULTS  # noqa: E402

SERIES = [  # (key, label, style)
    ("similar_first_p50_ms", "GET similar, first visit (cards from the database)", "o-"),
    ("similar_p50_ms", "GET similar, repeat visit (cards from memory)", "o-"),
    ("raw_p50_ms", "raw exact search alone (faster of numpy / FAISS)", "s--"),
    ("index_search_p50_ms", "the service's exact search alone (half pass + rescore)", "x-."),
    ("hnsw_p50_ms", "HNSW search alone", "s--"),
    ("trivial_p50_ms", "trivial endpoint (GET /health)", "^:"),
    ("write_p50_ms", "POST /movies, tiny encoders (database + index)", "d-"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS / "similar.json")
    parser.add_argument("--out", type=Path, default=Path("docs/img/cost_growth.png"))
    args = parser.parse_args()
    rows = {int(n): r for n, r in json.loads(args.results.read_text())["sizes"].items()}
    sizes = sorted(rows)
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(13, 6))
    for key, label, style in SERIES:
        pts = [(n, rows[n][key]) for n in sizes if rows[n].get(key) is not None]
        if pts:
            lat.plot(*zip(*pts, strict=True), style, label=label)
    lat.set(xscale="log", yscale="log", xlabel="movies in the catalogue", ylabel="p50 latency (ms)")
    lat.set_title("Latency per request")
    lat.grid(True, which="both", alpha=0.3)
    lat.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    for key, label in [
        ("server_rss_mib_loaded", "server resident memory after start (MiB)"),
        ("db_mib", "SQLite database file (MiB)"),
    ]:
        pts = [
            (n, rows[n]["db_bytes"] / 2**20 if key == "db_mib" else rows[n].get(key))
            for n in sizes
            if rows[n].get("db_bytes" if key == "db_mib" else key) is not None
        ]
        if pts:
            mem.plot(*zip(*pts, strict=True), "o-", label=label)
    mem.set(xscale="log", yscale="log", xlabel="movies in the catalogue", ylabel="MiB")
    mem.set_title("Memory and storage")
    mem.grid(True, which="both", alpha=0.3)
    mem.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
