"""Market surveillance: detectors (Numba kernels, batch and online alike), alerts, the alert
workflow with its audit trail, and market regimes."""
