"""Full garbage collections during similar-movies traffic: two servers on copies of one
catalogue, alike but for MOVIEREC_GC_FREEZE (start-up's objects frozen out of full collections,
the default, against off), each sent the same first visits (cards read and cached, as a filling
card cache does), alternating round by round. Reports the latency tail (p99, p99.9, max,
answers over 100 ms) and the slow full collections each server logged.

    .venv/bin/python -m bench.gc_pauses [--size 100000] [--requests 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np

from bench.common import pct, save
from bench.similar import build_catalogue, server_env, timed_ids, tiny_models

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def visits(server, ids: np.ndarray) -> dict:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        ms = 1e3 * timed_ids(client, ids)
    return {
        "p50_ms": pct(ms, 50),
        "p99_ms": pct(ms, 99),
        "p999_ms": pct(ms, 99.9),
        "max_ms": float(ms.max()),
        "over_100_ms": int((ms > 100).sum()),
    }


def slow_collections(data_dir: Path) -> list[str]:
    return [
        line.split("slow garbage collection: ")[1]
        for log in sorted(data_dir.glob("server-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "slow garbage collection" in line
    ]


def main() -> None:
    from tests.app.server import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=3000, help="first visits per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict = {"size": args.size, "requests": args.requests, "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = tiny_models(work / "models")
        build_catalogue(args.size, work, models)
        servers = {}
        for freeze in ("true", "false"):
            data_dir = work / f"gc-freeze-{freeze}"
            shutil.copytree(work / f"n{args.size}", data_dir)
            url = f"sqlite:///{data_dir / 'movierec.db'}"
            env = server_env(url, data_dir, models) | {"MOVIEREC_GC_FREEZE": freeze}
            servers[freeze] = ServerProcess(env, data_dir)
            servers[freeze].start(timeout=600)
        rng = np.random.default_rng(11)
        try:
            for r in range(args.rounds):
                ids = rng.integers(1, args.size + 1, args.requests)
                row = {name: visits(server, ids) for name, server in servers.items()}
                results["rounds"].append(row)
                print(r, row, flush=True)
        finally:
            for server in servers.values():
                server.stop()
        results["slow_collections"] = {
            name: slow_collections(work / f"gc-freeze-{name}") for name in servers
        }
    print(results["slow_collections"])
    print("wrote", save("gc-pauses", results))


if __name__ == "__main__":
    main()
