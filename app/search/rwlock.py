"""A readers-writer lock: FAISS CPU searches may run concurrently, writes are exclusive.

Waiting writers go first: a new reader waits while a writer does, so a stream of searches cannot
starve writes. Except behind a long read (an HNSW snapshot's clone: 1.3 s at 1M movies): the
writer cannot run before it ends anyway, and holding back new readers meanwhile stalled every
search for the rest of the clone. So while a `read(long=True)` is held, a waiting writer does not
block new readers; once it ends, new readers wait again and the writer goes next.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._long_readers = 0

    @contextmanager
    def read(self, *, long: bool = False) -> Iterator[None]:
        """`long`: this read holds the lock for long; see the module docstring."""
        with self._cond:
            while self._writer or (self._writers_waiting and not self._long_readers):
                self._cond.wait()
            self._readers += 1
            self._long_readers += long
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._long_readers -= long
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
