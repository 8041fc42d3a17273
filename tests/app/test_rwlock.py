"""RWLock: waiting writers go first, except behind a long read (an HNSW snapshot's clone), where
holding back new readers would stall every search for the rest of the clone."""

import threading
import time

from app.search.rwlock import RWLock

WAIT = 5.0  # seconds: generous, so a slow CI machine never fails a correct lock


def hold(lock: RWLock, mode: str, entered: threading.Event, release: threading.Event, **kw):
    cm = lock.write() if mode == "write" else lock.read(**kw)
    with cm:
        entered.set()
        release.wait(WAIT)


def start(*args, **kw) -> threading.Thread:
    thread = threading.Thread(target=hold, args=args, kwargs=kw, daemon=True)
    thread.start()
    return thread


def writer_waiting(lock: RWLock) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with lock._cond:
            if lock._writers_waiting:
                return True
        time.sleep(0.001)
    return False


def test_a_waiting_writer_holds_back_new_readers_behind_a_short_read():
    lock = RWLock()
    r1_in, r1_go, w_in, w_go, r2_in, r2_go = (threading.Event() for _ in range(6))
    start(lock, "read", r1_in, r1_go)
    assert r1_in.wait(WAIT)
    start(lock, "write", w_in, w_go)
    assert writer_waiting(lock)
    start(lock, "read", r2_in, r2_go)
    assert not r2_in.wait(0.2)  # behind the waiting writer
    r1_go.set()
    assert w_in.wait(WAIT) and not r2_in.is_set()  # the writer goes first
    w_go.set()
    assert r2_in.wait(WAIT)
    r2_go.set()


def test_new_readers_pass_a_writer_that_waits_for_a_long_read():
    lock = RWLock()
    long_in, long_go, w_in, w_go, r_in, r_go, late_in, late_go = (
        threading.Event() for _ in range(8)
    )
    long_reader = start(lock, "read", long_in, long_go, long=True)
    assert long_in.wait(WAIT)
    start(lock, "write", w_in, w_go)
    assert writer_waiting(lock)
    start(lock, "read", r_in, r_go)
    assert r_in.wait(WAIT)  # a search during the clone is not held back by the writer
    assert not w_in.is_set()
    long_go.set()  # the clone ends: the writer is next, after the search in flight
    long_reader.join(WAIT)
    start(lock, "read", late_in, late_go)
    assert not late_in.wait(0.2)  # writer preference is back
    assert not w_in.is_set()  # still waiting for the search in flight
    r_go.set()
    assert w_in.wait(WAIT)
    w_go.set()
    assert late_in.wait(WAIT)
    late_go.set()


def test_writes_stay_exclusive():
    lock, guard = RWLock(), threading.Lock()
    inside = {"read": 0, "write": 0}
    broken: list[dict[str, int]] = []

    def worker(i: int) -> None:
        mode = "write" if i % 2 else "read"
        for _ in range(300):
            with lock.write() if mode == "write" else lock.read(long=i % 4 == 0):
                with guard:
                    inside[mode] += 1
                    if inside["write"] > 1 or (inside["write"] and inside["read"]):
                        broken.append(dict(inside))
                with guard:
                    inside[mode] -= 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not broken and inside == {"read": 0, "write": 0}
