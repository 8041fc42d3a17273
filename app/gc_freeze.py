"""Keep start-up's objects out of Python's full garbage collections.

With the models loaded the process tracks over half a million objects (torch, transformers and
timm modules, their parameters' Python wrappers, imported code), all alive until shutdown. A
full (generation 2) collection walks every one of them while holding the GIL: 280 ms with the
dev encoders, during which no request makes progress. CPython runs one whenever the objects that
survived since the last one reach a quarter of the long-lived ones, which a filling card cache
reaches: 3,000 first visits at 100k movies met two, of 354 and 439 ms (docs/PERFORMANCE.md
section 1). `gc.freeze()` after start-up moves those objects to a permanent generation that
collections skip; what requests create is still collected. Full collections slower than 100 ms
are logged ("slow garbage collection"), frozen or not.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("movierec.gc")
SLOW_COLLECTION_SECONDS = 0.1  # a full collection longer than this is logged


def freeze_startup_objects() -> None:
    """Collect start-up's garbage, then freeze what is left."""
    gc.collect()
    gc.freeze()
    log.info("froze %d start-up objects out of full garbage collections", gc.get_freeze_count())


def unfreeze() -> None:
    """At shutdown: frozen objects become collectable again (an app stopped inside a longer-lived
    process, as in tests, would otherwise leave its cycles behind for good)."""
    gc.unfreeze()


class SlowCollectionLog:
    """Logs every full collection slower than SLOW_COLLECTION_SECONDS: a stall of every request
    that is otherwise invisible (it shows only as a latency spike)."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        if seconds > SLOW_COLLECTION_SECONDS:
            log.warning(
                "slow garbage collection: %.0f ms, %d objects frozen out of it",
                1e3 * seconds,
                gc.get_freeze_count(),
            )

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
