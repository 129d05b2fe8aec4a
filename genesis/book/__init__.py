"""Order books: the Numba L2 book with venue sequencing, and top-L snapshots."""

from genesis.book.l2 import SEQ_FUTURES, SEQ_SPOT, DepthResult, L2Book, applied_clocks

__all__ = ["L2Book", "DepthResult", "SEQ_SPOT", "SEQ_FUTURES", "applied_clocks"]
