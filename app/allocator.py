"""Keep freed heap memory for reuse instead of giving it back to the kernel after every request.

With glibc's defaults the embedding worker (a thread, so its own malloc arena) handed the pages
of each forward's activations back to the kernel when they were freed, and the next forward
faulted them back in, zero-filled: 2,000 to 15,000 minor page faults per movie (EfficientNet-Lite0,
3 images, CPU), a third of a core spent in the kernel, and the encoders about a third slower in
the service than the same forward in a main thread, whose heap keeps its pages
(docs/PERFORMANCE.md section 3). Three glibc knobs, set together, stop it:

- `M_MMAP_THRESHOLD` at glibc's ceiling (32 MiB): blocks below it come from the arena, whose
  pages stay mapped, instead of a fresh `mmap` each time;
- `M_TRIM_THRESHOLD`: an arena keeps up to this much free memory at its top instead of trimming
  it. Set alone it is harmful: it switches off glibc's adaptive mmap threshold, so every block
  over 128 KiB becomes an `mmap` (measured: 45,000 faults per movie);
- `M_TOP_PAD` of one thread heap (64 MiB): a thread's arena is a chain of 64 MiB heaps, and one
  whose memory is all free again is unmapped whatever the trim threshold, unless the heap below
  it lacks this much room. Without it, 2 test runs in 4 still faulted 285 and 1,765 pages per
  movie.

The cost is resident memory: each arena keeps its high-water mark, 58 MiB more for the service
with the dev encoders. Only glibc has these knobs; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger("movierec.allocator")

MiB = 1024 * 1024
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
THREAD_HEAP = 64 * MiB  # glibc's HEAP_MAX_SIZE on 64-bit
MMAP_THRESHOLD_CEILING = THREAD_HEAP // 2  # the most M_MMAP_THRESHOLD accepts


def keep_freed_memory(trim_threshold_mib: int) -> bool:
    """Make glibc keep freed memory (see the module docstring); 0 leaves its defaults.
    Process-wide, for blocks allocated from now on. Returns whether the setting took."""
    if trim_threshold_mib <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    took = all(
        libc.mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD_CEILING),
            (M_TRIM_THRESHOLD, trim_threshold_mib * MiB),
            (M_TOP_PAD, THREAD_HEAP),
        )
    )
    if not took:
        log.warning("glibc refused mallopt: freed memory goes back to the kernel as before")
    return took
