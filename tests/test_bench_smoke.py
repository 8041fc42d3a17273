"""Each bench runs end to end at a toy size and writes a results file with its ratios. A bench
nobody ran for a while broke once (bench.reindex unpacked two of build_catalogue's four values);
real runs are long, so these catch that in the suite. Results go to a temporary directory."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATASET, LITE0, MINILM, SHARED_REASON, image_bytes

ROOT = Path(__file__).resolve().parents[1]


def run_bench(module: str, *args: str, results: Path) -> None:
    env = {**os.environ, "MOVIEREC_BENCH_RESULTS": str(results), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_similar_bench(tmp_path):
    run_bench("bench.similar", "--sizes", "2000", "--requests", "20", results=tmp_path)
    row = json.loads((tmp_path / "similar.json").read_text())["sizes"]["2000"]
    assert len(row["rounds"]) == 3
    assert row["ratio_filtered_vs_repeat"] > 0 and row["similar_filtered_p50_ms"] > 0
    assert row["ratio_filtered_after_write_vs_repeat"] > 0
    assert row["similar_filtered_after_write_p50_ms"] > 0
    assert row["index_search_filtered_p50_ms"] > 0 and row["hnsw_filtered_p50_ms"] > 0
    for key in (
        "ratio_vs_raw_plus_trivial",
        "ratio_first_visit",
        "ratio_vs_own_search_plus_trivial",
        "ratio_first_visit_vs_own_search",
    ):
        low, high = row[key + "_range"]
        assert 0 < low <= row[key] <= high
    assert row["hnsw_recall_at_20"] > 0.9


def test_snapshot_reads_bench(tmp_path):
    run_bench("bench.snapshot_reads", "--size", "3000", "--rounds", "1", results=tmp_path)
    out = json.loads((tmp_path / "snapshot-reads.json").read_text())
    assert [r["long_read"] for r in out["rounds"]] == [False, True]
    assert all(r["searches_during"] > 0 for r in out["rounds"])


@pytest.mark.skipif(not MINILM.is_dir(), reason=SHARED_REASON)
def test_reindex_bench(tmp_path):
    run_bench("bench.reindex", "--movies", "300", results=tmp_path)
    out = json.loads((tmp_path / "reindex_small.json").read_text())
    assert out["movies"] == 300 and out["ratio"] > 0


def test_gc_pauses_bench(tmp_path):
    args = ("--size", "2000", "--requests", "30", "--rounds", "1")
    run_bench("bench.gc_pauses", *args, results=tmp_path)
    out = json.loads((tmp_path / "gc-pauses.json").read_text())
    assert set(out["rounds"][0]) == {"true", "false"}
    assert all(r["p50_ms"] > 0 for r in out["rounds"][0].values())


@pytest.mark.skipif(not DATASET.is_dir(), reason=SHARED_REASON)
def test_resize_bench(tmp_path):
    run_bench("bench.resize", "--images", "2", "--repeat", "1", results=tmp_path)
    out = json.loads((tmp_path / "resize.json").read_text())
    assert len(out["speed"]) == 8 and all(r["speedup"] > 0 for r in out["speed"].values())
    if LITE0.is_dir():
        assert out["features"]["stills 1280x720"]["max"] < 0.05  # crop-only: a rounding apart
        assert out["features"]["jpeg q90 re-save (dev posters)"]["median"] > 0


def test_ingest_bench_enlarges_posters_as_asked():
    from PIL import Image

    from bench.ingest import enlarged

    poster = image_bytes(seed=1)
    width, height = Image.open(io.BytesIO(poster)).size
    batch = enlarged([("title", "plot", [poster, poster])], 3)
    ((title, plot, images),) = batch
    assert (title, plot, len(images)) == ("title", "plot", 2)
    bigger = Image.open(io.BytesIO(images[0]))
    assert bigger.format == "JPEG" and bigger.size == (3 * width, 3 * height)


def test_ingest_cpu_bound_is_the_bare_wall_over_the_server_cpu_per_core():
    from bench.ingest import cpu_bound

    # bare: 20 movies/s = 50 ms a movie, 100 ms of CPU on 2 cores; the server spends 125 ms of
    # CPU per movie, so even perfectly overlapped a movie takes 62.5 ms: at most 0.8x the bare
    row = {"bare_movies_per_s": 20.0, "1_clients_server_cpu_ms_per_movie": 125.0}
    assert cpu_bound(row, cores=2) == pytest.approx(0.8)
    assert cpu_bound(row, cores=4) == pytest.approx(1.6)  # more cores than the bare forward used


@pytest.mark.slow
@pytest.mark.skipif(not (DATASET.is_dir() and MINILM.is_dir()), reason=SHARED_REASON)
def test_precision_bench(tmp_path):
    args = ("--movies", "2", "--rounds", "2", "--quality-movies", "40")
    run_bench("bench.precision", *args, results=tmp_path)
    out = json.loads((tmp_path / "precision-cpu-dev.json").read_text())
    assert out["resolved"] == {"fp32": "fp32", "bf16": "bf16"}
    assert len(out["speed"]["rounds"]) == 2 and out["speed"]["median"]["movie_speedup"] > 0
    quality = out["quality"]
    assert 0 < quality["image_change"]["median"] < 0.5  # bf16 moved the features, not far
    assert quality["fallback"]["top20_overlap"]["mean"] > 0.5  # most stay (0.96 over 1,000)


@pytest.mark.slow
@pytest.mark.skipif(not (DATASET.is_dir() and MINILM.is_dir()), reason=SHARED_REASON)
def test_ab_bench_runs_both_start_orders(tmp_path):
    args = ("--movies", "2", "--images-per-movie", "1", "--clients", "1", "--rounds", "2")
    settings = ("--a", "MOVIEREC_ENCODER_PRECISION=fp32", "--b", "MOVIEREC_ENCODER_PRECISION=bf16")
    run_bench("bench.ab", *args, *settings, "--tag", "smoke", results=tmp_path)
    out = json.loads((tmp_path / "ab-smoke.json").read_text())
    assert out["settings"]["b"] == {"MOVIEREC_ENCODER_PRECISION": "bf16"}
    ratio = out["b_vs_a"]["1"]
    for order in ("a_started_first", "b_started_first"):
        assert len(ratio[order]["per_round"]) == 2
    medians = [ratio[o]["median"] for o in ("a_started_first", "b_started_first")]
    assert ratio["both_orders"] == pytest.approx((medians[0] * medians[1]) ** 0.5)


def test_ab_bench_ratio_is_b_over_a_per_round_then_both_start_orders():
    from bench.ab import b_vs_a

    runs = {
        "a_started_first": [{"a_1": 10.0, "b_1": 12.0}, {"a_1": 10.0, "b_1": 14.0}],
        "b_started_first": [{"a_1": 10.0, "b_1": 9.0}, {"a_1": 20.0, "b_1": 18.0}],
    }
    ratio = b_vs_a(runs, 1)
    assert ratio["a_started_first"] == {"per_round": [1.2, 1.4], "median": pytest.approx(1.3)}
    assert ratio["b_started_first"]["median"] == pytest.approx(0.9)
    assert ratio["both_orders"] == pytest.approx((1.3 * 0.9) ** 0.5)  # geometric, not 1.1


def test_ab_bench_refuses_a_setting_the_service_does_not_have(tmp_path):
    env = {**os.environ, "MOVIEREC_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.ab", "--b", "MOVIEREC_ENCODER_PRECISON=bf16"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and "MOVIEREC_ENCODER_PRECISON" in done.stderr
    assert not list(tmp_path.iterdir())
