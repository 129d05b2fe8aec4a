"""Orchestration: ingest (feeds -> book -> store) and papermill pipeline runs."""
