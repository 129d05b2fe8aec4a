"""Replay backtesting over stored market events: a Numba matching engine with both clocks,
explicit latency, queue-position and fee models; metrics, reports and stored runs."""
