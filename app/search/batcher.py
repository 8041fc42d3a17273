"""Cross-request batching: concurrent ingests share one encoder call.

A GPU (and, less so, a CPU) embeds 16 images in one call much faster than in 16 calls of one,
but each POST carries one movie with a few images. One worker thread owns the encoders: it
takes the oldest waiting movie plus every movie that queued up while the previous batch ran
(up to `max_images` images, optionally waiting `max_wait` seconds for more), embeds them in one
text call, one image call and one fusion call, and hands each request its own result. Under
light load a movie is embedded as soon as it arrives; under heavy load batches grow by
themselves. A bounded queue gives back-pressure: past it, callers get 429.

A movie joins the queue before its images are decoded (`embed_preparing`): the worker encodes
its plot while the request thread decodes and resizes, and takes the pixels once the text is
done, so one client's decode no longer sits in series with the encoders. Only a batch's first
movie may still be decoding; the batch takes the others up to the first that is not ready.
That overlap is for encoders on a GPU: on a CPU the decode and the encoders share the same
cores, and the overlap made one client 3-10 % slower (docs/PERFORMANCE.md section 3), so there
a movie is decoded before it queues (`overlap_prepare=False`).

On a CPU a second, spare worker (`spare_worker=True`) starts when the first worker, starting a
batch, finds another movie waiting, and goes on taking waiting movies for as long as the first
is busy; while both work each runs the encoders on half the cores. On two cores two
single-threaded forwards get more done than one forward on both (no OpenMP barrier waits on a
thread that a request's decode preempted), while one client, whose movie never waits behind
another, keeps all the cores for its one forward.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from app.errors import ServiceUnavailable, TooManyRequests
from app.search.embedder import Embedder, Embedding

log = logging.getLogger("movierec.batcher")


# How long the worker waits for a queued movie's images after encoding its plot. The request
# thread always hands them over or gives up (decoding is bounded by the upload limits); this
# only keeps a bug from stalling every later ingest.
PIXELS_TIMEOUT_SECONDS = 120.0
# How often a spare worker that found no movie waiting looks again, while the first worker is busy
SPARE_POLL_SECONDS = 0.005


class _ImagesAbandoned(Exception):
    """The request thread failed to prepare its images (and answers with its own error)."""


@dataclass
class _Job:
    plot: str
    image_count: int
    # (N, 3, H, W) uint8 from Embedder.prepare, set by the request thread once decoded
    pixels: Future[torch.Tensor] = field(default_factory=Future)
    future: Future[Embedding] = field(default_factory=Future)
    counted: bool = True  # in BatchStats (the start-up warm-up is not)


@dataclass
class BatchStats:
    batches: int = 0
    movies: int = 0
    images: int = 0
    largest_batch: int = 0  # movies in the largest batch so far


class EmbedBatcher:
    def __init__(
        self,
        embedder: Embedder,
        *,
        max_images: int = 32,
        max_wait: float = 0.0,
        max_pending: int = 32,
        overlap_prepare: bool = True,
        spare_worker: bool = False,
    ) -> None:
        self.embedder = embedder
        self.max_images, self.max_wait = max_images, max_wait
        self.overlap_prepare = overlap_prepare
        self.stats = BatchStats()
        self._stats_lock = threading.Lock()
        # Held by the worker while it gathers and embeds a batch; maintenance code (and tests)
        # may take it to pause the worker between batches (a spare worker finishes its movie,
        # then waits too: it takes movies only while the first worker is embedding).
        self.device_lock = threading.Lock()
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_pending)
        self._closed = False
        self._carry: _Job | None = None  # taken from the queue, but would overfill the batch
        self._thread = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
        # the spare worker: it embeds what the first worker hands it (`_share_backlog`), then
        # what else waits while the first is busy (`_next_waiting`)
        self._all_threads = torch.get_num_threads()
        self._half_threads = max(1, self._all_threads // 2)
        self._handoff: queue.Queue[_Job | None] = queue.Queue()
        self._spare_busy = False  # set by the first worker on a hand-off, cleared by the spare
        self._first_busy = threading.Event()  # while set, the spare takes movies itself
        self._spare: threading.Thread | None = None
        if spare_worker and self._all_threads >= 2:  # one core: one worker
            self._spare = threading.Thread(target=self._run_spare, name="embed-spare", daemon=True)
            self._spare.start()
        self._thread.start()

    def embed(self, plot: str, pixels: torch.Tensor, *, wait: float) -> Embedding:
        """Queue one movie (its plot and `Embedder.prepare`d images) and block until its
        embedding is ready. Raises TooManyRequests when the queue stays full for `wait` seconds."""
        return self.embed_preparing(plot, len(pixels), lambda: pixels, wait=wait)

    def embed_preparing(
        self,
        plot: str,
        image_count: int,
        prepare: Callable[[], torch.Tensor],
        *,
        wait: float,
    ) -> Embedding:
        """`embed` for images not prepared yet: queue the movie, run `prepare` (decode and
        resize, in this thread) while the worker encodes the plot, hand the pixels over and block
        until the embedding is ready. An error from `prepare` (a bad upload's 4xx) is raised
        here as is; the worker drops the movie. Without `overlap_prepare` the images are
        prepared first, and a bad upload never reaches the queue."""
        if not self.overlap_prepare:
            ready = prepare()
            prepare = lambda: ready  # noqa: E731 - the same call below, already done
        job = _Job(plot, image_count)
        self._put(job, wait)
        try:
            pixels = prepare()
        except BaseException:
            job.pixels.set_exception(_ImagesAbandoned())
            raise
        job.pixels.set_result(pixels)
        return job.future.result()

    def _put(self, job: _Job, wait: float) -> None:
        if self._closed:
            raise ServiceUnavailable("the service is shutting down")
        try:
            self._queue.put(job, timeout=wait)
        except queue.Full:
            raise TooManyRequests(
                "too many movies are waiting to be embedded right now; retry shortly"
            ) from None

    def warm_up(self, pixels: torch.Tensor, timeout: float = 600.0) -> float:
        """Embed one throwaway movie on the worker before the first request, and return the
        seconds it took. The encoders' first forward is slow (allocations, oneDNN's kernels,
        CUDA's lazy start) and would otherwise land on the first POST (docs/PERFORMANCE.md
        section 3). An encoder that cannot embed it fails start-up instead of the first POST."""
        job = _Job("warm-up", len(pixels), counted=False)
        job.pixels.set_result(pixels)
        started = time.perf_counter()
        self._queue.put(job, timeout=timeout)
        job.future.result(timeout)
        return time.perf_counter() - started

    def queued(self) -> int:
        """Movies waiting for the worker (not counting the batch being embedded)."""
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued movies, then stop the worker."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._spare is not None:
            self._handoff.put(None)  # after the movie it may hold
            self._spare.join(timeout)
            # torch's thread count is per thread, but a set also becomes the default of threads
            # that start using torch later: the workers' last settings must not stay that default
            torch.set_num_threads(self._all_threads)

    def _run(self) -> None:
        while True:
            job, self._carry = self._carry or self._queue.get(), None
            if job is None:
                break
            with self.device_lock:  # gather once the encoders are free: all that queued joins
                batch, stop = self._gather(job)
                if self._spare is not None:  # all the cores, or half while the spare works
                    stop = self._share_backlog() or stop
                    torch.set_num_threads(
                        self._half_threads if self._spare_busy else self._all_threads
                    )
                self._first_busy.set()
                try:
                    self._process(batch)
                finally:
                    self._first_busy.clear()
            if stop:
                break
        self._refuse_leftovers()

    def _share_backlog(self) -> bool:
        """Before a batch: hand the next waiting movie to the spare worker if it is idle. Returns
        whether that took close()'s marker off the queue (the first worker then stops)."""
        if self._spare_busy:
            return False
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            return False
        if job is None:
            return True
        self._spare_busy = True
        self._handoff.put(job)
        return False

    def _run_spare(self) -> None:
        """From a hand-off on, embed one movie at a time while the first worker is busy."""
        torch.set_num_threads(self._half_threads)  # this thread's, and the default for new ones
        while (job := self._handoff.get()) is not None:
            while job is not None:
                self._process([job])
                job = self._next_waiting()
            self._spare_busy = False

    def _next_waiting(self) -> _Job | None:
        """The next movie to arrive while the first worker is still busy; None once it is idle
        (it takes the next one itself, on all the cores)."""
        while self._first_busy.is_set():
            try:
                job = self._queue.get(timeout=SPARE_POLL_SECONDS)
            except queue.Empty:
                continue
            if job is None:  # close()'s marker is the first worker's: back it goes
                self._queue.put(None)
            return job
        return None

    def _refuse_leftovers(self) -> None:
        """Movies queued after close() must not wait forever."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.future.set_exception(ServiceUnavailable("the service is shutting down"))

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job plus whatever else fits in `max_images` (a movie with more images than
        that goes alone) and has its images ready; returns (batch, shutdown requested).

        Only the first job may still be decoding (its plot is encoded meanwhile). A later one
        that is not ready ends the batch and starts the next: taken in, it would hold the whole
        batch's image call until its decode ended, with the device idle."""
        batch, images = [first], first.image_count
        deadline = time.monotonic() + self.max_wait
        while images < self.max_images:
            try:
                remaining = deadline - time.monotonic()
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if images + job.image_count > self.max_images or not job.pixels.done():
                self._carry = job  # first in the next batch
                break
            batch.append(job)
            images += job.image_count
        return batch, False

    def _process(self, batch: list[_Job]) -> None:
        """Plots first, then each movie's images as its request thread hands them over."""
        try:
            text = self.embedder.text_encoder.encode([j.plot for j in batch])
            rows, ready = self._take_images(batch)
            if not ready:
                return
            results = self.embedder.embed_with_text(text[rows], [p for _, p in ready])
        except Exception:
            batch = [j for j in batch if not j.future.done()]
            if len(batch) > 1:  # one bad movie must not fail the others: retry each alone
                for job in batch:
                    self._process([job])
                return
            log.exception("embedding failed")
            if batch:
                batch[0].future.set_exception(ServiceUnavailable("embedding failed"))
            return
        self._record([job for job, _ in ready])
        for (job, _), result in zip(ready, results, strict=True):
            job.future.set_result(result)

    def _take_images(self, batch: list[_Job]) -> tuple[list[int], list[tuple[_Job, torch.Tensor]]]:
        """(rows of the batch, (job, pixels)) of the movies whose images arrived; a movie whose
        request gave up on its images leaves the batch (its caller already has its error)."""
        rows, ready = [], []
        for row, job in enumerate(batch):
            try:
                pixels = job.pixels.result(timeout=PIXELS_TIMEOUT_SECONDS)
            except _ImagesAbandoned as exc:
                job.future.set_exception(exc)
                continue
            except TimeoutError:
                log.error("a movie's images never arrived; it is dropped")
                job.future.set_exception(ServiceUnavailable("embedding timed out"))
                continue
            rows.append(row)
            ready.append((job, pixels))
        return rows, ready

    def _record(self, batch: list[_Job]) -> None:
        batch = [j for j in batch if j.counted]
        if not batch:
            return
        s = self.stats
        with self._stats_lock:  # two workers may finish at once
            s.batches += 1
            s.movies += len(batch)
            s.images += sum(j.image_count for j in batch)
            s.largest_batch = max(s.largest_batch, len(batch))
