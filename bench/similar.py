"""Similar-movies path and catalogue growth: HTTP latency vs raw search and a trivial endpoint.

    .venv/bin/python -m bench.similar                      # 10k, 100k and 1M movies
    .venv/bin/python -m bench.similar --sizes 10000 100000 # quicker
    .venv/bin/python -m bench.similar --index-kind hnsw --sizes 1000000 --raw-sizes

For each catalogue size: a SQLite database and index snapshot of N movies with structured vectors,
a real uvicorn server (tiny encoders: encoder cost does not depend on catalogue size), then
  - the raw search in this process: FAISS flat, numpy xb @ q + argpartition, the service's own
    flat search, and HNSW with its recall@20 against exact; the own and HNSW searches also
    filtered to one genre group (a tenth of the catalogue),
  - in --rounds rounds (3), each alternating with the same queries' raw and own search in this
    process, so that the machine's drift hits both sides of a ratio alike:
    GET /movies/{id}/similar?k=20 over HTTP, sequential: first visits of new query movies
    (cards read from the database) and repeat visits of the same queries (cards from memory),
    GET /movies/{id}/similar?genre_group=3 (cards from memory; against the repeat visits: the
    cost of a genre filter), and GET /health on the same server (the trivial FastAPI endpoint),
  - POST /movies x 40 with a snapshot due every 20 (the write path: database, index,
    snapshots) and the server's memory.
Each ratio is the median of its per-round ratios, with their range; p50/p99 pool the rounds.
--index-kind hnsw serves the catalogue from an HNSW index (MOVIEREC_INDEX_KIND=hnsw); the ratio's
raw baseline is then the same HNSW index searched in this process.
Ratios are against baselines measured in the same run; absolute times are context only.
`python -m bench.growth_plot` draws the results as docs/img/cost_growth.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import insert

from bench.common import clustered_unit_vectors, pct, rss_mib, save, timed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.search.index import VectorIndex  # noqa: E402

HNSW_M, HNSW_EF = 32, 128  # the service's defaults
FILTER_GROUP = (
    3  # ?genre_group= of the filtered timings: a tenth of the catalogue (build_catalogue)
)


def tiny_models(directory: Path) -> dict[str, str]:
    from tests.helpers import make_tiny_bert, make_tiny_timm

    return {
        "text_model": str(make_tiny_bert(directory / "tiny-bert")),
        "image_model": "test_efficientnet",
        "image_weights": str(make_tiny_timm(directory / "tiny.safetensors")),
    }


def build_catalogue(
    n: int, work: Path, models: dict[str, str], kind: str = "flat", production_cards: bool = False
) -> tuple[str, np.ndarray, VectorIndex, float]:
    """SQLite database + index snapshot (of `kind`) for n movies, written directly (fast), as
    the service would have stored them. Returns the database URL, the vectors, the index and
    the seconds its build took. `production_cards`: raw features of KoBERT's and b7's sizes
    (768 + 2,560 floats, 13 KB a movie) and 500-character plots, as a real catalogue's cards
    weigh, instead of the tiny encoders' features and a one-letter plot."""
    from app.config import Settings
    from app.db import make_engine
    from app.migrations import upgrade_database
    from app.movies.models import ChangeLog, Movie, MovieFeatures, MovieGenreGroup, MovieVector
    from app.search.embedder import Embedder

    data_dir = work / f"n{n}"
    url = f"sqlite:///{data_dir / 'movierec.db'}"
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=url, device="cpu", **models)
    upgrade_database(url)
    embedder = Embedder.from_settings(settings)
    vectors = clustered_unit_vectors(n)
    rng = np.random.default_rng(1)
    text_dim, image_dim = embedder.text_encoder.dim, embedder.image_encoder.dim
    plot = "p"
    if production_cards:
        text_dim, image_dim, plot = 768, 2560, ("A quiet town hides a secret. " * 18)[:500]
    engine = make_engine(url)
    with engine.begin() as conn:
        for s in range(0, n, 20_000):
            ids = range(s + 1, min(n, s + 20_000) + 1)
            text = rng.normal(size=(len(ids), text_dim)).astype("<f4")  # a chunk at a time:
            image = rng.random((len(ids), image_dim)).astype("<f4")  # 13 GB at 1M otherwise
            conn.execute(
                insert(Movie),
                [
                    {
                        "id": i,
                        "title": f"movie {i}",
                        "plot": plot,
                        "genres": ["Drama"],
                        "external_id": str(i),
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(MovieGenreGroup),
                [
                    {"movie_id": i, "group_id": 1 + i % 10, "inferred": False, "confidence": 1.0}
                    for i in ids
                ],
            )
            conn.execute(
                insert(MovieFeatures),
                [
                    {
                        "movie_id": i,
                        "text_model": "t",
                        "image_model": "i",
                        "text": text[i - 1 - s].tobytes(),
                        "image": image[i - 1 - s].tobytes(),
                        "image_count": 1,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(MovieVector),
                [
                    {
                        "movie_id": i,
                        "model_version": embedder.model_version,
                        "vector": vectors[i - 1].tobytes(),
                    }
                    for i in ids
                ],
            )
        conn.execute(insert(ChangeLog), [{"movie_id": n, "op": "upsert"}])
    engine.dispose()
    index = VectorIndex(256, kind, hnsw_m=HNSW_M, ef_search=HNSW_EF)
    t = time.perf_counter()
    index.upsert(np.arange(1, n + 1), vectors)
    build_s = time.perf_counter() - t
    index.save(data_dir / "index", last_seq=1, model_version=embedder.model_version)
    return url, vectors, index, build_s


def baseline_searches(
    vectors: np.ndarray, k: int = 20, hnsw: VectorIndex | None = None
) -> dict[str, Callable[..., object]]:
    """One query each: bare FAISS flat, numpy `xb @ q` + argpartition (the raw baselines), the
    service's own flat search (its default, with the half-precision first pass, and float32
    only) and, given one, an HNSW index's search (optionally with an `allowed` id array, as a
    genre filter passes it). `half_fallbacks()`: the own searches the half pass could not
    answer."""
    import faiss

    flat = VectorIndex(256)
    flat.upsert(np.arange(1, len(vectors) + 1), vectors)
    flat_float = VectorIndex(256, half_scan=False)
    flat_float.upsert(np.arange(1, len(vectors) + 1), vectors)
    raw_faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(256))  # the bare FAISS exact search
    raw_faiss.add_with_ids(vectors, np.arange(1, len(vectors) + 1))

    def numpy_search(q: np.ndarray) -> np.ndarray:
        scores = vectors @ q
        top = np.argpartition(-scores, k)[: k + 1]
        return top[np.argsort(-scores[top])]

    out: dict[str, Callable[..., object]] = {
        "faiss": lambda q: raw_faiss.search(q[None], k + 1),
        "numpy": numpy_search,
        "own": lambda q, allowed=None: flat.search(q, k, exclude={1}, allowed=allowed),
        "own_float": lambda q: flat_float.search(q, k, exclude={1}),
        "exact": lambda q: flat.search(q, k),  # recall's reference
        "half_fallbacks": lambda: flat.half_scan_fallbacks,
    }
    if hnsw is not None:
        out["hnsw"] = lambda q, allowed=None: hnsw.search(q, k, allowed=allowed)
    return out


def filter_group_ids(n: int) -> np.ndarray:
    """The ids `build_catalogue` puts in FILTER_GROUP (group 1 + id % 10)."""
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ids[1 + ids % 10 == FILTER_GROUP]


def time_queries(search: Callable[..., object], queries: np.ndarray) -> np.ndarray:
    it = iter(queries)
    return timed(lambda: search(next(it)), len(queries))


def raw_search(
    vectors: np.ndarray,
    queries: np.ndarray,
    searches: dict[str, Callable[..., object]],
    k: int = 20,
    hnsw_index: tuple[VectorIndex, float] | None = None,
) -> dict:
    """Exact search three ways (`baseline_searches`) and, with `hnsw_index` (an index and its
    build seconds), HNSW with its recall@20 against exact."""
    import faiss

    faiss_s, numpy_s, ours_s, ours_float_s = (
        time_queries(searches[n], queries) for n in ("faiss", "numpy", "own", "own_float")
    )
    members = filter_group_ids(len(vectors))
    own_filtered = time_queries(lambda q: searches["own"](q, members), queries)
    out = {
        "index_search_filtered_p50_ms": 1e3 * pct(own_filtered, 50),
        "faiss_flat_p50_ms": 1e3 * pct(faiss_s, 50),
        "numpy_p50_ms": 1e3 * pct(numpy_s, 50),
        "raw_p50_ms": 1e3 * min(pct(faiss_s, 50), pct(numpy_s, 50)),
        "index_search_p50_ms": 1e3 * pct(ours_s, 50),
        "index_search_float_p50_ms": 1e3 * pct(ours_float_s, 50),
        "half_scan_fallbacks": searches["half_fallbacks"](),
        "faiss_threads": faiss.omp_get_max_threads(),
    }
    if hnsw_index is None:
        return out
    hnsw, out["hnsw_build_s"] = hnsw_index
    hnsw_s = time_queries(searches["hnsw"], queries)
    hnsw_filtered = time_queries(lambda q: searches["hnsw"](q, members), queries)
    out["hnsw_filtered_p50_ms"] = 1e3 * pct(hnsw_filtered, 50)
    recall = []
    for q in queries[:200]:
        exact = {i for i, _ in searches["exact"](q)}  # type: ignore[attr-defined]
        recall.append(len(exact & {i for i, _ in hnsw.search(q, k)}) / k)
    out.update(hnsw_p50_ms=1e3 * pct(hnsw_s, 50), hnsw_recall_at_20=float(np.mean(recall)))
    return out


def build_hnsw(vectors: np.ndarray) -> tuple[VectorIndex, float]:
    built = VectorIndex(256, "hnsw", hnsw_m=HNSW_M, ef_search=HNSW_EF)
    t = time.perf_counter()
    built.upsert(np.arange(1, len(vectors) + 1), vectors)
    return built, time.perf_counter() - t


def server_env(url_db: str, data_dir: Path, models: dict[str, str]) -> dict[str, str]:
    """MOVIEREC_* settings of a bench server on this catalogue with the tiny encoders."""
    return {
        "MOVIEREC_DATABASE_URL": url_db,
        "MOVIEREC_DATA_DIR": str(data_dir),
        "MOVIEREC_DEVICE": "cpu",
        "MOVIEREC_TEXT_MODEL": models["text_model"],
        "MOVIEREC_IMAGE_MODEL": models["image_model"],
        "MOVIEREC_IMAGE_WEIGHTS": models["image_weights"],
    }


def http_bench(
    url_db: str,
    data_dir: Path,
    models: dict[str, str],
    vectors: np.ndarray,
    searches: dict[str, Callable[..., object]],
    requests: int,
    rounds: int,
    kind: str = "flat",
) -> dict:
    """One server per catalogue, measured in `rounds` rounds that alternate with the baselines
    in this process (this machine's speed drifts within minutes): per round, first visits of new
    query movies (cards read from the database), repeat visits of the same (cards from memory),
    the trivial endpoint, the raw search and the service's own search on the same queries. Then a
    few writes and the server's memory. Ratios are medians of the per-round ratios."""
    from tests.app.server import ServerProcess
    from tests.app.util import post_movie

    env = server_env(url_db, data_dir, models) | {
        "MOVIEREC_CARD_CACHE_SIZE": str(max(20_000, 30 * requests)),
        "MOVIEREC_SNAPSHOT_EVERY": "20",  # two index snapshots fall due within the 40 writes
        "MOVIEREC_INDEX_KIND": kind,
        "MOVIEREC_HNSW_M": str(HNSW_M),
        "MOVIEREC_HNSW_EF_SEARCH": str(HNSW_EF),
    }
    n = len(vectors)
    server = ServerProcess(env, data_dir)
    ready_s = server.start(timeout=1200)
    rng = np.random.default_rng(2)
    drawn = 1 + rng.choice(n, min(n, 20 + requests), replace=False)  # every query a new movie
    warm_ids, per_round = drawn[:20], np.array_split(drawn[20:], rounds)
    samples: dict[str, list[np.ndarray]] = {}
    per_round_p50: list[dict[str, float]] = []
    try:
        rss_loaded = rss_mib(server.proc.pid)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for i in warm_ids:  # warm-up: connections, code paths
                assert client.get(f"/movies/{i}/similar", params={"k": 20}).status_code == 200

            def served(ids: np.ndarray) -> dict[str, np.ndarray]:
                first, repeat = timed_ids(client, ids), timed_ids(client, ids)
                timed_ids(client, ids, FILTER_GROUP)  # its results' cards into the cache
                return {
                    "first": first,
                    "repeat": repeat,
                    "filtered": timed_ids(client, ids, FILTER_GROUP),  # cards from memory
                    "filtered_after_write": timed_ids(client, ids, FILTER_GROUP, written=n),
                    "trivial": timed(lambda: client.get("/health"), len(ids)),
                }

            def in_process(ids: np.ndarray) -> dict[str, np.ndarray]:
                queries = vectors[ids - 1]
                if kind == "hnsw":  # the served index is the raw baseline and its own search
                    hnsw = time_queries(searches["hnsw"], queries)
                    return {"raw": hnsw, "own": hnsw}
                faiss_s, numpy_s = (time_queries(searches[m], queries) for m in ("faiss", "numpy"))
                raw = faiss_s if pct(faiss_s, 50) < pct(numpy_s, 50) else numpy_s
                return {"raw": raw, "own": time_queries(searches["own"], queries)}

            for r, ids in enumerate(per_round):
                steps = (in_process, served) if r % 2 == 0 else (served, in_process)
                got = {name: x for step in steps for name, x in step(ids).items()}
                for name, x in got.items():
                    samples.setdefault(name, []).append(x)
                per_round_p50.append({name: 1e3 * pct(x, 50) for name, x in got.items()})
            writes = timed_writes(client, post_movie, 40)
        rss_end = rss_mib(server.proc.pid)
    finally:
        server.stop()
    db_file = Path(url_db.removeprefix("sqlite:///"))
    slow_writes = [  # the service logs where a write slower than 1 s spent its time
        line
        for log in sorted(data_dir.glob("server-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "slow write" in line
    ]
    pooled = {name: np.concatenate(xs) for name, xs in samples.items()}
    first, repeat, trivial = pooled["first"], pooled["repeat"], pooled["trivial"]
    filtered_vs_repeat = [r["filtered"] / r["repeat"] for r in per_round_p50]
    after_write_vs_repeat = [r["filtered_after_write"] / r["repeat"] for r in per_round_p50]
    return {
        "ready_s": ready_s,
        "rounds": per_round_p50,
        **round_ratios(per_round_p50),
        "similar_first_p50_ms": 1e3 * pct(first, 50),
        "similar_first_p99_ms": 1e3 * pct(first, 99),
        "similar_p50_ms": 1e3 * pct(repeat, 50),
        "similar_p99_ms": 1e3 * pct(repeat, 99),
        "similar_rps": len(repeat) / repeat.sum(),
        "similar_filtered_p50_ms": 1e3 * pct(pooled["filtered"], 50),
        "ratio_filtered_vs_repeat": float(np.median(filtered_vs_repeat)),
        "similar_filtered_after_write_p50_ms": 1e3 * pct(pooled["filtered_after_write"], 50),
        "ratio_filtered_after_write_vs_repeat": float(np.median(after_write_vs_repeat)),
        "trivial_p50_ms": 1e3 * pct(trivial, 50),
        "trivial_p99_ms": 1e3 * pct(trivial, 99),
        "write_p50_ms": 1e3 * pct(writes, 50),
        "write_max_ms": 1e3 * float(writes.max()),
        "server_rss_mib_loaded": rss_loaded,
        "server_rss_mib_end": rss_end,
        "db_bytes": db_file.stat().st_size if db_file.is_file() else None,
        "slow_writes": slow_writes,
    }


def round_ratios(rounds: list[dict[str, float]]) -> dict:
    """The targets' ratios, each the median over rounds of that round's ratio (with the range):
    served p50 against the raw search + trivial endpoint, and against the service's own search +
    trivial endpoint (the pure serving overhead; for HNSW both baselines are the served index)."""
    out: dict = {}
    for name, served, base in (
        ("ratio_vs_raw_plus_trivial", "repeat", "raw"),
        ("ratio_first_visit", "first", "raw"),
        ("ratio_vs_own_search_plus_trivial", "repeat", "own"),
        ("ratio_first_visit_vs_own_search", "first", "own"),
    ):
        ratios = [r[served] / (r[base] + r["trivial"]) for r in rounds]
        out[name] = float(np.median(ratios))
        out[name + "_range"] = [min(ratios), max(ratios)]
    return out


def timed_ids(
    client: httpx.Client,
    ids: np.ndarray,
    genre_group: int | None = None,
    written: int | None = None,
) -> np.ndarray:
    """Seconds of GET /movies/{id}/similar for each of `ids`. `written`: before each (untimed),
    PATCH that movie's genres into or out of a group, as steady ingest writes between reads."""
    it = iter(ids)
    params = {"k": 20} if genre_group is None else {"k": 20, "genre_group": genre_group}

    def one() -> None:
        r = client.get(f"/movies/{next(it)}/similar", params=params)
        assert r.status_code == 200, r.text

    if written is None:
        return timed(one, len(ids))
    elapsed = np.empty(len(ids))
    for i in range(len(ids)):
        r = client.patch(f"/movies/{written}", json={"genres": [("Comedy", "Animation")[i % 2]]})
        assert r.status_code == 200, r.text
        elapsed[i] = timed(one, 1)[0]
    return elapsed


def timed_writes(client: httpx.Client, post_movie, count: int) -> np.ndarray:
    """POST /movies with the tiny encoders: the write path's database + index + snapshot cost
    as the catalogue grows (the real encoders' cost does not depend on catalogue size)."""
    seeds = iter(range(count))

    def one() -> None:
        r = post_movie(client, title="bench", plot="a bench movie", seed=next(seeds))
        assert r.status_code == 201, r.text

    return timed(one, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--raw-sizes",
        type=int,
        nargs="*",
        default=[],
        help="sizes measured for the raw search only (no HTTP)",
    )
    parser.add_argument("--requests", type=int, default=300, help="queries per catalogue size")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds the queries are split into, alternating served and in-process timings",
    )
    parser.add_argument("--index-kind", choices=("flat", "hnsw"), default="flat")
    parser.add_argument(
        "--production-cards",
        action="store_true",
        help="store raw features of KoBERT's and b7's sizes and 500-character plots (13 KB a "
        "movie: what a first visit reads per card in production)",
    )
    parser.add_argument(
        "--hnsw-max",
        type=int,
        default=200_000,
        help="build HNSW only up to this size (1M takes many minutes on 2 cores)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kind = args.index_kind
    name = "similar" if kind == "flat" else f"similar-{kind}"
    name += "-production-cards" if args.production_cards else ""
    results: dict = {"index_kind": kind, "production_cards": args.production_cards, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = tiny_models(work / "models")
        for n in args.sizes:
            t = time.perf_counter()
            url, vectors, index, index_s = build_catalogue(
                n, work, models, kind, args.production_cards
            )
            queries = vectors[np.random.default_rng(3).integers(0, n, args.requests)]
            row = {"build_s": time.perf_counter() - t}
            hnsw_index = (index, index_s) if kind == "hnsw" else None
            if hnsw_index is None and n <= args.hnsw_max:
                hnsw_index = build_hnsw(vectors)
            searches = baseline_searches(vectors, hnsw=hnsw_index[0] if hnsw_index else None)
            row.update(raw_search(vectors, queries, searches, hnsw_index=hnsw_index))
            del index, hnsw_index
            row.update(
                http_bench(
                    url, work / f"n{n}", models, vectors, searches, args.requests, args.rounds, kind
                )
            )
            del searches
            results["sizes"][n] = row
            print(
                n,
                {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
                flush=True,
            )
            save(name, results)  # a later, larger size may fail: keep what is measured
        for n in args.raw_sizes:
            vectors = clustered_unit_vectors(n)
            queries = vectors[np.random.default_rng(3).integers(0, n, 100)]
            hnsw_index = build_hnsw(vectors) if n <= args.hnsw_max else None
            searches = baseline_searches(vectors, hnsw=hnsw_index[0] if hnsw_index else None)
            row = raw_search(vectors, queries, searches, hnsw_index=hnsw_index)
            results["sizes"][n] = row
            print(
                n,
                {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
                flush=True,
            )
    print("wrote", save(name, results))


if __name__ == "__main__":
    main()
