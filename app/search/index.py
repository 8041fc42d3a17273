"""Vector index keyed by movie id: inner product on unit vectors (= cosine).

flat: exact, in a FlatStore (numpy; O(1) replace and delete), snapshotted as its raw arrays
(FLAT_RAW: the ids, then the vectors; snapshots written before session 5 are FAISS IndexIDMap2
and still load). hnsw: FAISS IndexIDMap2(IndexHNSWFlat), approximate, for large catalogues; HNSW
cannot remove, so deleted ids are tombstoned and filtered, replaced ids are re-added and
candidates are rescored with their current vector. Past 10 % of the graph, the maintenance thread
rebuilds it from the live vectors while writes go on (`compact`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import faiss
import numpy as np

from app.failpoints import failpoint
from app.search.flat_store import FlatCopy, FlatStore
from app.search.rwlock import RWLock
from app.search.topk import top_indices

INDEX_FILE, MANIFEST_FILE = "index.faiss", "manifest.json"
# Snapshot formats. FAISS: faiss.serialize_index. FLAT_RAW: `count` int64 ids, then `count` x dim
# float32 vectors, little-endian, no header: written straight from the copied arrays, with no
# FAISS index built and no second serialised copy (at 1M movies, two fewer 1 GB copies).
FAISS_FORMAT, FLAT_RAW = "faiss", "flat-raw-v1"
# Below this many vectors the float32 GEMV is as fast as the half-precision first pass (the
# store fits in the CPU's caches); above it the half scan wins, 2.1x at 50k here (HalfScan).
HALF_SCAN_MIN_ROWS = 32_768


class SnapshotError(Exception):
    """The snapshot is missing, truncated, corrupt or for another model: rebuild it from
    the database."""


@dataclass
class Manifest:
    last_seq: int
    count: int
    sha256: str
    model_version: str
    kind: str
    removed: list[int]
    format: str = FAISS_FORMAT  # manifests before session 5 have no format: FAISS


@dataclass
class Compaction:
    """An HNSW graph being rebuilt from the live vectors (`VectorIndex.begin_compaction`). From
    its start the index records every id written, and those are re-applied to the new graph
    before it replaces the old one, so writes never wait for the rebuild itself."""

    base: faiss.Index  # the graph being replaced: if a replace_all swaps it meanwhile, give up
    fresh: VectorIndex
    pending: list[np.ndarray]  # chunks of live ids not copied yet


@dataclass
class IndexSnapshot:
    """An index copied at one change-log sequence and what its manifest will say, not yet on
    disk. `serialize` runs in `write`, outside the index lock, and returns the file's contents
    as consecutive buffers (written and hashed in turn, never joined)."""

    serialize: Callable[[], Sequence[np.ndarray]]
    last_seq: int
    count: int
    model_version: str
    kind: str
    removed: list[int]
    format: str

    def write(self, directory: Path) -> Manifest:
        """Index first, manifest last, each via temp file + fsync + rename. The manifest carries
        a checksum of the index file, so any torn state is detected at load and rebuilt."""
        directory.mkdir(parents=True, exist_ok=True)
        chunks = [_bytes_view(chunk) for chunk in self.serialize()]
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        manifest = Manifest(
            last_seq=self.last_seq,
            count=self.count,
            sha256=digest.hexdigest(),
            model_version=self.model_version,
            kind=self.kind,
            removed=self.removed,
            format=self.format,
        )
        _write_atomic(directory / INDEX_FILE, chunks)
        failpoint("snapshot_after_index_rename")
        _write_atomic(directory / MANIFEST_FILE, [json.dumps(manifest.__dict__).encode()])
        _fsync_dir(directory)
        return manifest


def _apply_writes(
    fresh: VectorIndex, touched: set[int], live: np.ndarray, vectors: np.ndarray
) -> None:
    """Bring `fresh` up to date for the `touched` ids: the `live` ones get their current
    `vectors`, the others were deleted."""
    if len(live):
        fresh.upsert(live, vectors)
    gone = touched.difference(live.tolist())
    if gone:
        fresh.remove(sorted(gone))


def _leave_room_to_grow(index: faiss.IndexIDMap2) -> None:
    """A deserialised HNSW index's arrays are exactly full, so the first add after a load copied
    all of them into bigger ones, under the write lock (0.7 s at 1M movies in one process, 2.4-2.9
    s in the service). Growing each by one element and back does that copy now, at load: the
    capacity doubles, and the pages past the copied elements are never written, so they cost
    address space, not resident memory (docs/PERFORMANCE.md section 1)."""
    inner = faiss.downcast_index(index.index)
    hnsw, storage = inner.hnsw, faiss.downcast_index(inner.storage)
    for array in (index.id_map, hnsw.levels, hnsw.offsets, hnsw.neighbors, storage.codes):
        if getattr(array, "is_owned", True):  # a memory-mapped FAISS array cannot grow
            size = array.size()
            array.resize(size + 1)
            array.resize(size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _bytes_view(array: np.ndarray) -> memoryview:
    """A contiguous array's bytes, without a copy."""
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _write_atomic(path: Path, chunks: Sequence[bytes | memoryview]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    if path.name == INDEX_FILE:
        failpoint("snapshot_after_index_tmp")
    tmp.replace(path)


class VectorIndex:
    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        hnsw_m: int = 32,
        ef_search: int = 128,
        *,
        half_scan: bool = True,
    ):
        """`half_scan` (flat only): keep a half-precision copy of the vectors (half a float32
        copy's memory) and scan it first on catalogues of `half_scan_min_rows` or more."""
        if kind not in ("flat", "hnsw"):
            raise ValueError(f"unknown index kind {kind!r}")
        self.dim, self.kind, self.hnsw_m, self.ef_search = dim, kind, hnsw_m, ef_search
        self.half_scan = half_scan and kind == "flat"
        self.half_scan_min_rows = HALF_SCAN_MIN_ROWS
        self.half_scan_fallbacks = 0  # searches whose candidates could not prove the top k
        self.lock = RWLock()
        self._store = FlatStore(dim, half=self.half_scan)  # flat: the vectors (empty for hnsw)
        self._index = self._empty()  # hnsw: the graph (stays empty for flat)
        self._hnsw_live: set[int] = set()  # hnsw: ids in the graph that are not tombstoned
        self._removed: set[int] = set()  # hnsw tombstones
        self._stale = 0  # hnsw: replaced vectors still in the graph
        self._touched: set[int] | None = None  # hnsw: ids written while a Compaction runs
        self._compactions_stopped = threading.Event()

    def _like_this(self) -> VectorIndex:
        """An empty index of the same kind and settings."""
        return VectorIndex(
            self.dim, self.kind, self.hnsw_m, self.ef_search, half_scan=self.half_scan
        )

    @property
    def _live(self) -> set[int] | dict[int, int]:
        """The live ids: the flat store's id -> row map, or the HNSW live set."""
        return self._store.rows if self.kind == "flat" else self._hnsw_live

    def _empty(self) -> faiss.IndexIDMap2:
        """An empty FAISS index of this kind (flat keeps one unused: its vectors live in the
        FlatStore)."""
        if self.kind == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(inner)

    @staticmethod
    def _serialize_clone(clones: list[faiss.Index]) -> list[np.ndarray]:
        """The serialised form of an HNSW graph copied under the lock, built off it. The copy is
        released once serialised: the live graph, the copy and its bytes coexist only briefly."""
        index = clones.pop()
        return [faiss.serialize_index(index)]

    # -- writes (exclusive) ---------------------------------------------------------------------
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if (ids < 0).any():
            raise ValueError("movie ids must be non-negative (-1 is FAISS' 'no result')")
        with self.lock.write():
            if self.kind == "flat":
                self._store.upsert(ids, vectors)
                return
            id_list = ids.tolist()
            self._stale += sum(1 for i in id_list if i in self._hnsw_live)
            self._index.add_with_ids(vectors, ids)
            self._hnsw_live.update(id_list)
            self._removed.difference_update(id_list)
            if self._touched is not None:
                self._touched.update(id_list)

    def remove(self, ids: list[int]) -> None:
        with self.lock.write():
            gone = [i for i in ids if i in self._live]
            if not gone:
                return
            if self.kind == "flat":
                self._store.remove(gone)
                return
            self._removed.update(gone)
            self._hnsw_live.difference_update(gone)
            if self._touched is not None:
                self._touched.update(gone)

    def replace_all(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Build a fresh index off to the side, then swap it in (reads never see a half index)."""
        fresh = self._like_this()
        if len(ids):
            fresh.upsert(ids, vectors)
        with self.lock.write():
            self._adopt(fresh)

    def _adopt(self, fresh: VectorIndex) -> None:
        """Take over `fresh`'s contents (a rebuilt index of this kind); hold the write lock."""
        self._store, self._index, self._hnsw_live = fresh._store, fresh._index, fresh._hnsw_live
        self._removed, self._stale = fresh._removed, fresh._stale

    def needs_compaction(self, fraction: float = 0.1) -> bool:
        """HNSW only: tombstones and replaced vectors above `fraction` of the graph."""
        return self.kind == "hnsw" and (len(self._removed) + self._stale) > fraction * max(
            self._index.ntotal, 1
        )

    def compact(self, *, settle: int = 256, max_rounds: int = 8, chunk: int = 50_000) -> bool:
        """Rebuild the HNSW graph from the live vectors (drops tombstones and stale copies) with
        writes going on. The vectors are read in chunks under the read lock and added to a new
        graph with no lock held (at 100k movies the build takes 5 s, at 1M minutes); the ids
        written meanwhile are re-applied in rounds until a round sees at most `settle` of them,
        and only the last round runs under the write lock, just before the swap. False when a
        `replace_all` overtook the rebuild (its index stays) or `stop_compactions` stopped it."""
        if self._compactions_stopped.is_set():
            return False
        job = self.begin_compaction(chunk)
        try:
            while not self._compactions_stopped.is_set() and self.compaction_copy(job):
                pass
            for _ in range(max_rounds):
                if self._compactions_stopped.is_set() or self.compaction_catch_up(job) <= settle:
                    break
        except BaseException:
            self.abort_compaction()
            raise
        if self._compactions_stopped.is_set():
            self.abort_compaction()
            return False
        return self.finish_compaction(job)

    def stop_compactions(self) -> None:
        """At shutdown: a running compaction gives up after its current chunk (at 1M movies a
        rebuild takes minutes; the graph it would have dropped tombstones from is still
        correct), and none starts again."""
        self._compactions_stopped.set()

    def begin_compaction(self, chunk: int = 50_000) -> Compaction:
        if self.kind != "hnsw":
            raise ValueError("only an HNSW index is compacted")
        # excludes writers: from here on every written id is recorded. Long (the live ids of a
        # 1M graph): searches pass a write that waits for it (RWLock)
        with self.lock.read(long=True):
            if self._touched is not None:
                raise RuntimeError("a compaction is already running")
            self._touched = set()
            ids = np.fromiter(self._hnsw_live, np.int64, len(self._hnsw_live))
            base = self._index
        ids.sort()
        fresh = self._like_this()
        return Compaction(base, fresh, [ids[s : s + chunk] for s in range(0, len(ids), chunk)])

    def compaction_copy(self, job: Compaction) -> bool:
        """Copy the next chunk of live vectors into the new graph; True while chunks remain.
        Ids written since the start are copied again by the catch-up, whatever this read."""
        if job.pending:
            with self.lock.read(long=True):  # 50,000 vectors copied: searches pass a waiting write
                ids, vectors = self._current(job.pending.pop(0).tolist())
            if len(ids):
                job.fresh.upsert(ids, vectors)  # the expensive part: no lock of ours held
        return bool(job.pending)

    def compaction_catch_up(self, job: Compaction) -> int:
        """Re-apply the ids written since the last round to the new graph, with no lock held
        while it is updated; returns how many there were."""
        with self.lock.read():
            touched, self._touched = self._touched or set(), set()
            ids, vectors = self._current(touched)
        _apply_writes(job.fresh, touched, ids, vectors)
        return len(touched)

    def finish_compaction(self, job: Compaction) -> bool:
        """Under the write lock: the last writes, then the new graph replaces the old."""
        with self.lock.write():
            touched, self._touched = self._touched or set(), None
            if self._index is not job.base:
                return False
            _apply_writes(job.fresh, touched, *self._current(touched))
            self._adopt(job.fresh)
        return True

    def abort_compaction(self) -> None:
        with self.lock.read():
            self._touched = None

    def _current(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """HNSW: the live ones of `ids` (sorted) and their current vectors. Hold the lock."""
        live = np.array(sorted(i for i in ids if i in self._hnsw_live), dtype=np.int64)
        return live, self._index.reconstruct_batch(live)

    # -- reads (concurrent) ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._live)

    def ids(self) -> set[int]:
        with self.lock.read():
            return set(self._live)

    def vector(self, movie_id: int) -> np.ndarray | None:
        with self.lock.read():
            if self.kind == "flat":
                return self._store.vector(movie_id)
            if movie_id not in self._live:
                return None
            return self._index.reconstruct(int(movie_id))

    def _search_flat_numpy(
        self, query: np.ndarray, k: int, blocked: set[int], inside: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """One query on the flat index: a BLAS GEMV on all cores, then the top scores through a
        bound on chunk maxima (`top_indices`); `inside`: the genre filter's mask over the rows.
        faiss-cpu takes its BLAS path only for large query batches; for a single query this is
        several times faster (bench/similar.py)."""
        xb, ids = self._store.view()
        scores = xb @ query  # (N,)
        if inside is not None:
            scores[~inside] = -np.inf
        top = top_indices(scores, k + len(blocked))
        out = [(int(ids[i]), float(scores[i])) for i in top if int(ids[i]) not in blocked]
        return [p for p in out if p[1] > -np.inf][:k]

    def _search_flat_half(
        self,
        query: np.ndarray,
        k: int,
        blocked: set[int],
        inside: np.ndarray | None,
        available: int,
    ) -> list[tuple[int, float]] | None:
        """The exact top k from a half-precision first pass (`HalfScan`): the best candidates
        by approximate score (among the rows `inside` the genre filter's mask, given one),
        rescored in float32. None when the store has no half copy, is too small for it to pay,
        or when the candidates cannot prove that they hold the top k (the k-th exact score does
        not clear the last candidate's approximate score by the rounding bound): the caller
        then scans in float32. `available`: the rows a candidate may come from."""
        half, n = self._store.half, self._store.n
        if half is None or n < self.half_scan_min_rows or not half.usable:
            return None
        if not np.isfinite(query).all():  # no bound holds; FAISS may return no rows
            return None
        fetch = min(available, 2 * (k + len(blocked)) + 16)
        rows, approx = half.candidates(query, fetch, inside)
        xb, ids = self._store.view()
        # einsum, not BLAS: a GEMV this small would wake the BLAS threads (asleep between
        # requests now that the scan is FAISS') for less work than the wake-up costs
        exact = np.einsum("ij,j->i", xb[rows], query)
        keep = np.fromiter((int(i) not in blocked for i in ids[rows]), bool, len(rows))
        rows, exact = rows[keep], exact[keep]
        order = np.lexsort((rows, -exact))[:k]  # best first; equal scores in row order
        if fetch < available and not (
            len(order) == k and exact[order[-1]] >= approx[-1] + half.error_bound(query)
        ):
            self.half_scan_fallbacks += 1
            return None
        return [(int(ids[r]), float(s)) for r, s in zip(rows[order], exact[order], strict=True)]

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        exclude: set[int] | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (movie id, cosine) for one unit query vector, best first. `exclude` ids never
        appear; with `allowed` (unique movie ids, an int64 array), only those can. Costs
        O(|exclude| + |allowed|) besides the scan itself (flat: one vectorised membership test
        over the scanned rows): nothing here copies the catalogue's id set."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(self.dim)
        with self.lock.read():
            blocked = {i for i in (exclude or ()) if i in self._live}
            if self.kind == "flat":
                k = min(k, len(self._live) - len(blocked))
                inside, available = None, len(self._live)  # the genre filter's rows, as a mask
                if allowed is not None:
                    inside = np.isin(self._store.view()[1], allowed, assume_unique=True)
                    available = int(np.count_nonzero(inside))
                    k = min(k, available)  # allowed rows in the index
                if k <= 0:
                    return []
                found = self._search_flat_half(query, k, blocked, inside, available)
                if found is None:
                    found = self._search_flat_numpy(query, k, blocked, inside)
                return found
            if allowed is not None and blocked:
                allowed = allowed[~np.isin(allowed, np.fromiter(blocked, np.int64, len(blocked)))]
            # allowed ids come from the database, whose movies are all indexed: its size bounds k
            # (a stale id only makes the search widen further), with no set of it built per query
            k = min(k, len(allowed) if allowed is not None else len(self._live) - len(blocked))
            if k <= 0:
                return []
            return self._search_hnsw(query, k, blocked, allowed)

    def _search_hnsw(
        self, query: np.ndarray, k: int, blocked: set[int], allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """FAISS HNSW with an ID selector for the caller's exclusions. Tombstones and replaced
        vectors stay in the graph until compaction: hits not in `_live` are dropped, duplicates
        are rescored once with their current vector, and the search widens until k remain (the
        tombstone set is never copied into a per-query selector)."""
        params = faiss.SearchParametersHNSW()
        if allowed is not None:  # blocked ids already taken out of it
            params.sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        elif blocked:
            params.sel = faiss.IDSelectorNot(
                faiss.IDSelectorBatch(np.fromiter(blocked, np.int64, len(blocked)))
            )
        total = self._index.ntotal
        fetch = min(total, 2 * k + 16)
        while True:
            params.efSearch = max(self.ef_search, fetch)
            _, labels = self._index.search(query[None], fetch, params=params)
            unique = list(
                dict.fromkeys(int(i) for i in labels[0] if i != -1 and int(i) in self._live)
            )
            if len(unique) >= k or fetch >= total:
                break
            fetch = min(total, 4 * fetch)
        if not unique:
            return []
        current = np.stack([self._index.reconstruct(i) for i in unique])
        rescored = (current @ query).tolist()
        return sorted(zip(unique, rescored, strict=True), key=lambda p: -p[1])[:k]

    # -- snapshots ------------------------------------------------------------------------------
    def _read_flat_raw(self, path: Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
        """A FLAT_RAW file read straight into its two arrays, checked against the manifest."""
        n = manifest.count
        if not isinstance(n, int) or n < 0:
            raise SnapshotError(f"snapshot manifest has a bad count {n!r}")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SnapshotError(f"no readable snapshot at {path}: {exc}") from exc
        if size != n * (8 + 4 * self.dim):  # checked before anything is allocated
            raise SnapshotError(
                f"snapshot holds {size} bytes, not {n} movies x {self.dim} dims "
                "(torn write, or another vector size)"
            )
        ids, xb = np.empty(n, "<i8"), np.empty((n, self.dim), "<f4")
        try:
            with path.open("rb") as fh:
                for array in (ids, xb):
                    if fh.readinto(_bytes_view(array)) != array.nbytes:
                        raise SnapshotError("snapshot file ended early")
        except OSError as exc:
            raise SnapshotError(f"no readable snapshot at {path}: {exc}") from exc
        digest = hashlib.sha256(_bytes_view(ids))
        digest.update(_bytes_view(xb))
        if digest.hexdigest() != manifest.sha256:
            raise SnapshotError("snapshot checksum mismatch (torn or corrupted write)")
        return ids, xb

    def _install_flat(self, ids: np.ndarray, xb: np.ndarray, manifest: Manifest) -> None:
        store = FlatStore.from_arrays(xb, ids, half=self.half_scan)
        if len(store.rows) != manifest.count:
            raise SnapshotError("snapshot id count does not match its manifest")
        with self.lock.write():
            self._store, self._removed = store, set()

    def save(self, directory: Path, *, last_seq: int, model_version: str) -> Manifest:
        return self.capture(last_seq=last_seq, model_version=model_version).write(directory)

    def prepare_capture(self) -> FlatCopy | None:
        """Flat: start a copy of the vectors whose bulk (`FlatCopy.bulk`) runs with no lock held,
        for `capture(prepared=...)` to finish. None for HNSW (its graph is cloned in `capture`).
        A prepared copy that is not captured must go back through `abort_capture`."""
        if self.kind != "flat":
            return None
        with self.lock.read():  # excludes writers: the store starts recording written rows
            return self._store.begin_copy()

    def abort_capture(self, prepared: FlatCopy) -> None:
        with self.lock.read():  # a writer must not see the recording stop halfway
            prepared.abort()

    def capture(
        self, *, last_seq: int, model_version: str, prepared: FlatCopy | None = None
    ) -> IndexSnapshot:
        """The index as of `last_seq`, copied under the read lock: the only part of a snapshot
        that must not overlap a write. A flat index finishes `prepared` (re-copying only the rows
        written since it began) or copies its two arrays whole; an HNSW graph is copied with
        `faiss.clone_index` (3-8x faster than serialising it, which at 1M movies held writes for
        7 s: docs/PERFORMANCE.md). `IndexSnapshot.write` hashes and writes the copy later.
        A clone or whole copy is a long read: searches go on while a write waits (`RWLock`)."""
        with self.lock.read(long=self.kind == "hnsw" or prepared is None):
            if self.kind == "flat":
                if prepared is not None and prepared.store is self._store:
                    ids, xb = prepared.finish()
                else:  # no copy prepared, or the store was replaced (reindex) since
                    if prepared is not None:
                        prepared.abort()
                    xb, ids = (a.copy() for a in self._store.view())
                rows = [ids, xb]  # the FLAT_RAW layout
                serialize: Callable[[], Sequence[np.ndarray]] = partial(list, rows)
                form = FLAT_RAW
            else:
                serialize = partial(self._serialize_clone, [faiss.clone_index(self._index)])
                form = FAISS_FORMAT
            return IndexSnapshot(
                serialize=serialize,
                last_seq=last_seq,
                count=len(self._live),
                model_version=model_version,
                kind=self.kind,
                removed=sorted(self._removed),
                format=form,
            )

    def load(self, directory: Path, *, model_version: str) -> Manifest:
        for stray in directory.glob("*.tmp"):
            stray.unlink()
        try:
            manifest = Manifest(**json.loads((directory / MANIFEST_FILE).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise SnapshotError(f"no readable snapshot in {directory}: {exc}") from exc
        if manifest.model_version != model_version or manifest.kind != self.kind:
            raise SnapshotError(
                f"snapshot is for {manifest.model_version}/{manifest.kind}, "
                f"serving {model_version}/{self.kind}"
            )
        if manifest.format == FLAT_RAW and self.kind == "flat":
            ids, xb = self._read_flat_raw(directory / INDEX_FILE, manifest)
            self._install_flat(ids, xb, manifest)
            return manifest
        if manifest.format != FAISS_FORMAT:
            raise SnapshotError(f"unknown snapshot format {manifest.format!r} for {self.kind}")
        try:
            data = (directory / INDEX_FILE).read_bytes()
        except OSError as exc:
            raise SnapshotError(f"no readable snapshot in {directory}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != manifest.sha256:
            raise SnapshotError("snapshot checksum mismatch (torn or corrupted write)")
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        del data  # at most two copies of the vectors at a time (the store copies the index's)
        if index.d != self.dim:
            raise SnapshotError(f"snapshot dim {index.d} != {self.dim}")
        stored_ids = faiss.vector_to_array(index.id_map)
        ids = set(stored_ids.tolist()) - set(manifest.removed)
        if len(ids) != manifest.count:
            raise SnapshotError("snapshot id count does not match its manifest")
        if self.kind == "flat":  # a snapshot written before session 5
            inner, n = faiss.downcast_index(index.index), index.ntotal
            xb = (
                faiss.rev_swig_ptr(inner.get_xb(), n * self.dim).reshape(n, self.dim)
                if n
                else np.zeros((0, self.dim), np.float32)
            )
            self._install_flat(stored_ids, xb, manifest)
            return manifest
        faiss.downcast_index(index.index).hnsw.efSearch = self.ef_search
        _leave_room_to_grow(index)
        with self.lock.write():
            self._index, self._hnsw_live, self._removed = index, ids, set(manifest.removed)
        return manifest
