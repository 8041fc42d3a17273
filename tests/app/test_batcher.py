"""Cross-request batching with the real (tiny) encoders: movies that queue up while the encoders
are busy are embedded in one call, each gets exactly its own result, and one bad movie fails
alone."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from app.config import Settings
from app.errors import ServiceUnavailable
from app.search.batcher import EmbedBatcher
from tests.helpers import image_bytes

PLOTS = [
    "a ghost haunts a dark house at night",
    "two friends race across the desert",
    "a detective hunts a killer in the rain",
    "a family of robots learns to sing",
    "pirates search for a cursed treasure map",
    "an astronaut is stranded on a cold moon",
]


def images(seed: int, n: int) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(image_bytes(seed=seed * 10 + i))).convert("RGB") for i in range(n)
    ]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition(), "timed out"


@dataclass
class EncodeCall:
    plots: list[str]
    thread: str  # the thread that ran it
    torch_threads: int  # its torch thread count


def spy_on_text_encoder(embedder, monkeypatch) -> list[EncodeCall]:
    """Every text-encoder call from here on, recorded once it has returned."""
    calls: list[EncodeCall] = []
    encode = embedder.text_encoder.encode

    def encode_and_record(texts, *args, **kwargs):
        out = encode(texts, *args, **kwargs)
        name, threads = threading.current_thread().name, torch.get_num_threads()
        calls.append(EncodeCall(list(texts), name, threads))
        return out

    monkeypatch.setattr(embedder.text_encoder, "encode", encode_and_record)
    return calls


def queued_in_order(pool: ThreadPoolExecutor, batcher: EmbedBatcher, calls) -> list[Future]:
    """Submit each call (one that queues a movie) while the worker is held, each movie in the
    queue before the next is submitted; the worker starts on them once this returns."""
    futures = []
    start = batcher._queue.unfinished_tasks
    with batcher.device_lock:
        for i, call in enumerate(calls):
            futures.append(pool.submit(call))
            wait_until(lambda i=i: batcher._queue.unfinished_tasks == start + i + 1)
    return futures


@pytest.fixture
def movie(tiny_embedder):
    """(seed, n) -> n test images through Embedder.prepare, as a request thread hands them over"""
    return lambda seed, n: tiny_embedder.prepare(images(seed, n))


@pytest.fixture
def batcher(tiny_embedder):
    b = EmbedBatcher(tiny_embedder, max_images=64, max_pending=16)
    yield b
    b.close()


def test_queued_movies_share_one_encoder_call_and_get_their_own_results(
    batcher, tiny_embedder, movie
):
    movies = [(plot, movie(i, 1 + i % 3)) for i, plot in enumerate(PLOTS)]
    with ThreadPoolExecutor(len(movies)) as pool:
        with batcher.device_lock:  # the encoders are busy: everything queues behind the first
            futures = [pool.submit(batcher.embed, p, ims, wait=10) for p, ims in movies]
            wait_until(lambda: batcher.queued() == len(movies) - 1)
        results = [f.result(timeout=60) for f in futures]
    assert batcher.stats.batches == 1 and batcher.stats.largest_batch == len(movies)
    assert batcher.stats.images == sum(len(ims) for _, ims in movies)
    for (plot, ims), got in zip(movies, results, strict=True):
        alone = tiny_embedder.embed_many([(plot, ims)])[0]
        np.testing.assert_allclose(got.text, alone.text, atol=1e-5)
        np.testing.assert_allclose(got.image, alone.image, atol=1e-5)
        np.testing.assert_allclose(got.vector, alone.vector, atol=1e-5)


def test_a_failing_movie_fails_alone(batcher, movie):
    with ThreadPoolExecutor(3) as pool:
        with batcher.device_lock:
            good = pool.submit(batcher.embed, PLOTS[0], movie(0, 2), wait=10)
            no_image = torch.zeros((0, 3, 8, 8), dtype=torch.uint8)  # the encoder raises
            bad = pool.submit(batcher.embed, PLOTS[1], no_image, wait=10)
            other = pool.submit(batcher.embed, PLOTS[2], movie(2, 1), wait=10)
            wait_until(lambda: batcher.queued() == 2)
        assert good.result(timeout=60).vector.shape == (256,)
        assert other.result(timeout=60).vector.shape == (256,)
        with pytest.raises(ServiceUnavailable):
            bad.result(timeout=60)


def test_a_movies_plot_is_encoded_while_its_images_are_prepared(
    batcher, tiny_embedder, movie, monkeypatch
):
    """One client's decode and resize overlap the text encoder instead of running before it."""
    calls = spy_on_text_encoder(tiny_embedder, monkeypatch)
    pixels = movie(3, 2)

    def prepare():
        wait_until(lambda: len(calls) == 1)  # before this returns, the worker has encoded
        return pixels

    got = batcher.embed_preparing(PLOTS[3], 2, prepare, wait=10)
    assert [c.plots for c in calls] == [[PLOTS[3]]]
    alone = tiny_embedder.embed_many([(PLOTS[3], pixels)])[0]
    np.testing.assert_allclose(got.vector, alone.vector, atol=1e-5)


def test_without_overlap_images_are_prepared_before_the_movie_queues(
    tiny_embedder, movie, monkeypatch
):
    """On a CPU (`overlap_prepare=False`) the decode runs first, with the cores to itself, and a
    bad upload never reaches the worker."""
    b = EmbedBatcher(tiny_embedder, overlap_prepare=False)
    calls = spy_on_text_encoder(tiny_embedder, monkeypatch)
    pixels = movie(3, 2)
    encoded_before_prepared = []

    def prepare():
        time.sleep(0.2)  # time enough for an overlapping worker to encode the plot
        encoded_before_prepared.append(len(calls))
        return pixels

    def broken():
        raise ValueError("not an image")

    try:
        got = b.embed_preparing(PLOTS[3], 2, prepare, wait=10)
        assert encoded_before_prepared == [0] and len(calls) == 1
        with pytest.raises(ValueError, match="not an image"):
            b.embed_preparing(PLOTS[0], 1, broken, wait=10)
        assert b._queue.unfinished_tasks == 1  # only the good movie was ever queued
        assert len(calls) == 1
        alone = tiny_embedder.embed_many([(PLOTS[3], pixels)])[0]
        np.testing.assert_allclose(got.vector, alone.vector, atol=1e-5)
    finally:
        b.close()


needs_two_threads = pytest.mark.skipif(
    torch.get_num_threads() < 2, reason="one torch thread: no spare worker"
)


@needs_two_threads
def test_a_lone_client_keeps_every_core_and_never_wakes_the_spare(
    tiny_embedder, movie, monkeypatch
):
    b = EmbedBatcher(tiny_embedder, max_images=2, overlap_prepare=False, spare_worker=True)
    calls = spy_on_text_encoder(tiny_embedder, monkeypatch)
    try:
        for i, plot in enumerate(PLOTS):
            b.embed(plot, movie(i, 2), wait=10)
    finally:
        b.close()
    every_core = ("embed-batcher", torch.get_num_threads())
    assert [(c.thread, c.torch_threads) for c in calls] == [every_core] * len(PLOTS)


@needs_two_threads
def test_waiting_movies_go_to_the_spare_and_both_run_on_half_the_cores(
    tiny_embedder, movie, monkeypatch
):
    b = EmbedBatcher(tiny_embedder, max_images=2, overlap_prepare=False, spare_worker=True)
    half = torch.get_num_threads() // 2
    movies = [(plot, movie(i, 2)) for i, plot in enumerate(PLOTS)]
    calls = spy_on_text_encoder(tiny_embedder, monkeypatch)
    try:
        with ThreadPoolExecutor(len(movies)) as pool:
            # a backlog behind a busy first worker, which took the first movie
            embeds = [partial(b.embed, p, ims, wait=10) for p, ims in movies]
            results = [f.result(timeout=60) for f in queued_in_order(pool, b, embeds)]
    finally:
        b.close()
    assert not b._thread.is_alive() and b._spare is not None and not b._spare.is_alive()
    first_workers = [c for c in calls if c.plots == [PLOTS[0]]]
    spares = [c for c in calls if c.thread == "embed-spare"]
    assert [c.thread for c in calls if c.plots == [PLOTS[1]]] == ["embed-spare"]
    assert all(c.torch_threads == half for c in spares)
    # the first worker handed the second movie over, then split the cores for the first
    assert [(c.thread, c.torch_threads) for c in first_workers] == [("embed-batcher", half)]
    assert (b.stats.movies, b.stats.images) == (len(movies), 2 * len(movies))
    monkeypatch.undo()
    for (plot, ims), got in zip(movies, results, strict=True):
        alone = tiny_embedder.embed_many([(plot, ims)])[0]
        np.testing.assert_allclose(got.vector, alone.vector, atol=1e-5)


@needs_two_threads
def test_a_movie_failing_on_the_spare_fails_alone(tiny_embedder, movie, monkeypatch):
    b = EmbedBatcher(tiny_embedder, max_images=2, overlap_prepare=False, spare_worker=True)
    calls = spy_on_text_encoder(tiny_embedder, monkeypatch)
    no_image = torch.zeros((0, 3, 8, 8), dtype=torch.uint8)  # the image encoder raises
    jobs = [(PLOTS[0], movie(0, 2)), (PLOTS[1], no_image), (PLOTS[2], movie(2, 2))]
    try:
        with ThreadPoolExecutor(3) as pool:
            embeds = [partial(b.embed, plot, pixels, wait=10) for plot, pixels in jobs]
            futures = queued_in_order(pool, b, embeds)
            assert futures[0].result(timeout=60).vector.shape == (256,)
            assert futures[2].result(timeout=60).vector.shape == (256,)
            with pytest.raises(ServiceUnavailable):
                futures[1].result(timeout=60)
    finally:
        b.close()
    # handed over, and failed there alone
    assert [c.thread for c in calls if c.plots == [PLOTS[1]]] == ["embed-spare"]
    assert (b.stats.movies, b.stats.images) == (2, 4)


def test_a_movie_whose_images_fail_raises_its_own_error_and_leaves_the_batch(batcher, movie):
    class BadUpload(ValueError):
        pass

    def broken():
        raise BadUpload("not an image")

    good, other = movie(0, 2), movie(2, 1)
    with ThreadPoolExecutor(3) as pool:
        with batcher.device_lock:  # all three queue up and share one batch
            futures = [
                pool.submit(batcher.embed_preparing, PLOTS[0], 2, lambda: good, wait=10),
                pool.submit(batcher.embed_preparing, PLOTS[1], 1, broken, wait=10),
                pool.submit(batcher.embed_preparing, PLOTS[2], 1, lambda: other, wait=10),
            ]
            wait_until(lambda: batcher.queued() == 2)
        assert futures[0].result(timeout=60).vector.shape == (256,)
        assert futures[2].result(timeout=60).vector.shape == (256,)
        with pytest.raises(BadUpload, match="not an image"):
            futures[1].result(timeout=60)
    assert (batcher.stats.batches, batcher.stats.movies, batcher.stats.images) == (1, 2, 3)


def test_a_movie_still_decoding_starts_the_next_batch_instead_of_holding_this_one(batcher, movie):
    decoded = threading.Event()
    ready_a, slow_b, ready_c = movie(0, 1), movie(1, 1), movie(2, 1)

    def still_decoding():
        assert decoded.wait(timeout=30)
        return slow_b

    with ThreadPoolExecutor(3) as pool:
        prepares = [lambda: ready_a, still_decoding, lambda: ready_c]
        embeds = [
            partial(batcher.embed_preparing, PLOTS[i], 1, prepare, wait=10)
            for i, prepare in enumerate(prepares)
        ]
        futures = queued_in_order(pool, batcher, embeds)
        futures[0].result(timeout=60)  # a alone: b, not ready, ends the batch
        assert (batcher.stats.batches, batcher.stats.largest_batch) == (1, 1)
        decoded.set()
        for f in futures[1:]:
            f.result(timeout=60)
    assert (batcher.stats.batches, batcher.stats.largest_batch) == (2, 2)  # then b with c


def test_images_cap_splits_batches(tiny_embedder, movie):
    b = EmbedBatcher(tiny_embedder, max_images=4, max_pending=16)
    sizes = [2, 1, 3, 2, 2]  # queued in this order behind a busy encoder
    try:
        with ThreadPoolExecutor(len(sizes)) as pool:
            embeds = [partial(b.embed, PLOTS[i], movie(i, n), wait=10) for i, n in enumerate(sizes)]
            for f in queued_in_order(pool, b, embeds):
                f.result(timeout=60)
        # never more than 4 images in one call: [2, 1], [3], [2, 2]
        assert b.stats.batches == 3 and b.stats.images == sum(sizes)
    finally:
        b.close()


@pytest.mark.parametrize(
    "spare, movies, images",
    [
        pytest.param(False, 2, 1, id="one worker"),
        # three movies of 2 images, 2 to a batch: one goes to the spare, which close() must let
        # finish before it stops both workers
        pytest.param(True, 3, 2, id="with the spare", marks=needs_two_threads),
    ],
)
def test_close_finishes_queued_work_then_refuses(tiny_embedder, movie, spare, movies, images):
    b = EmbedBatcher(
        tiny_embedder, max_images=2, max_pending=4, overlap_prepare=not spare, spare_worker=spare
    )
    with ThreadPoolExecutor(movies) as pool:
        with b.device_lock:
            queued = [
                pool.submit(b.embed, PLOTS[i], movie(i, images), wait=10) for i in range(movies)
            ]
            wait_until(lambda: b.queued() == movies - 1)
            closing = pool.submit(b.close)
        closing.result(timeout=60)
        assert all(f.result(timeout=1).vector.shape == (256,) for f in queued)
    assert not b._thread.is_alive()
    if spare:
        assert b._spare is not None and not b._spare.is_alive()
    else:
        assert b._spare is None
    with pytest.raises(ServiceUnavailable):
        b.embed(PLOTS[0], movie(0, 1), wait=1)


def test_batch_cap_defaults_by_device(make_client, database_url):
    """On a CPU bigger batches cost more per image (docs/PERFORMANCE.md), on a GPU far less."""
    from pydantic import ValidationError

    from app.config import Settings

    assert Settings(_env_file=None).batch_images("cpu") == 4
    assert Settings(_env_file=None).batch_images("cuda") == 32
    assert Settings(_env_file=None, ingest_batch_images=12).batch_images("cpu") == 12
    with pytest.raises(ValidationError, match="ingest_batch_images"):
        Settings(_env_file=None, ingest_batch_images=0)  # a start-up error, not a silent 1
    client = make_client(database_url)
    assert client.app.state.movierec.batcher.max_images == 4
    # and on a CPU a movie is decoded before it queues, not beside its plot's encoding, and a
    # spare worker shares a backlog
    batcher = client.app.state.movierec.batcher
    assert batcher.overlap_prepare is False
    assert (batcher._spare is not None) == (torch.get_num_threads() >= 2)


def test_the_warm_up_runs_on_the_worker_and_is_not_counted(batcher, movie):
    assert batcher.warm_up(movie(1, 2)) > 0
    assert batcher.stats.batches == batcher.stats.movies == 0
    batcher.embed(PLOTS[0], movie(2, 1), wait=10)
    assert (batcher.stats.batches, batcher.stats.movies, batcher.stats.images) == (1, 1, 1)


def test_an_app_warms_its_encoders_up_before_serving(make_client, caplog):
    caplog.set_level("INFO", logger="movierec")
    state = make_client().app.state.movierec
    assert any("encoders warmed up in" in r.getMessage() for r in caplog.records)
    assert state.batcher.stats.batches == 0  # not counted as traffic


def test_the_slow_write_limit_follows_the_encoders_pace_unless_set():
    auto = Settings(_env_file=None)
    assert auto.slow_write_limit(0.01) == 1.0  # fast encoders: the 1 s floor
    assert auto.slow_write_limit(1.3) == pytest.approx(5.2)  # KoBERT/b7 on a CPU: 4x a warm movie
    assert Settings(_env_file=None, slow_write_seconds=2.5).slow_write_limit(1.3) == 2.5


def test_an_app_sets_its_slow_write_limit_at_start_up(make_client, tmp_path):
    assert make_client().app.state.movierec.slow_write_seconds == 1.0  # tiny encoders: the floor
    fixed = make_client(data_dir=tmp_path / "fixed", slow_write_seconds=7.0)
    assert fixed.app.state.movierec.slow_write_seconds == 7.0
