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

Blocks over 32 MiB are still `mmap`ed and unmapped every time: EfficientNet-b7 at 600 px has
activations of 35-100 MiB for a movie's images, and the service faulted 250,000 pages (1 GB) per
movie back in, a sixth of its CPU time in the kernel. A thread's arena cannot keep them either:
glibc maps any block too big for a 64 MiB thread heap directly, whatever `M_MMAP_MAX` says.
`keep_large_blocks` therefore puts every thread on the main arena, whose heap has no such bound,
and turns `mmap`ed blocks off: on 2 CPU cores with KoBERT/b7 shapes one client ingested 1.40x
the movies/s and eight 1.22x (docs/PERFORMANCE.md section 3). The costs: one arena lock shared
by every thread, and a freed large block stays resident until reused unless it sits at the top
of the heap. So the service turns it on only where it pays (`app.lifespan.keeps_large_blocks`):
CPU encoders whose forward writes tensors too big for a thread heap. With smaller ones (b7 at
300 px, Lite0) nothing was unmapped, and the shared arena cost 0.90-1.00x; on a GPU the
activations live in CUDA's own allocator.

Kept large blocks still go back to the kernel when more than `M_TRIM_THRESHOLD` lies free at the
top of the heap, as b7 at 600 px in fp32 leaves it while the heap settles. Never trimming removed
those faults but no measurable time (1.00x), for 0.9 GB more resident after 8 clients
(docs/PERFORMANCE.md section 3, session 16), so the threshold stays `MALLOC_KEEP_FREED_MIB`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger("movierec.allocator")

MiB = 1024 * 1024
# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -3, -4, -8
THREAD_HEAP = 64 * MiB  # glibc's HEAP_MAX_SIZE on 64-bit
MMAP_THRESHOLD_CEILING = THREAD_HEAP // 2  # the most M_MMAP_THRESHOLD accepts
# mallopt takes a C int: ctypes would wrap a larger byte count silently (4096 MiB -> 0 bytes, a
# heap trimmed after every free: the opposite of the setting)
MAX_TRIM_THRESHOLD_MIB = (2**31 - 1) // MiB


def keep_freed_memory(trim_threshold_mib: int) -> bool:
    """Make glibc keep freed memory (see the module docstring); 0 leaves its defaults.
    Process-wide, for blocks allocated from now on. Returns whether the setting took."""
    if trim_threshold_mib <= 0:
        return False
    if trim_threshold_mib > MAX_TRIM_THRESHOLD_MIB:
        raise ValueError(f"at most {MAX_TRIM_THRESHOLD_MIB} MiB: mallopt takes a C int of bytes")
    took = _mallopt(
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_CEILING),
        (M_TRIM_THRESHOLD, trim_threshold_mib * MiB),
        (M_TOP_PAD, THREAD_HEAP),
    )
    if took is False:
        log.warning("glibc refused mallopt: freed memory goes back to the kernel as before")
    return bool(took)


def keep_large_blocks() -> bool:
    """Serve blocks over 32 MiB from the heap too: every thread on the main arena, no `mmap`ed
    blocks (see the module docstring). Call it before the process starts its second thread: a
    thread that has allocated keeps its arena. Returns whether the setting took."""
    took = _mallopt((M_ARENA_MAX, 1), (M_MMAP_MAX, 0))
    if took is False:
        log.warning("glibc refused mallopt: blocks over 32 MiB are mmap'ed as before")
    return bool(took)


def _mallopt(*settings: tuple[int, int]) -> bool | None:
    """Every (parameter, value) through glibc's mallopt: whether all took; None off glibc."""
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
