"""Models over limit-order-book snapshots: DeepLOB, its metrics and fast inference."""
