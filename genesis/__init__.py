"""Genesis: limit-order-book market microstructure research platform.

One package, one sub-package per stage of the flow (see ``DESIGN.md``)::

    feeds -> book -> features -> surveillance / models / strategy -> store

``store`` is the sink every stage may use; ``pipelines`` orchestrates stages
(ingest, papermill runs); ``config`` and ``cli`` sit at the edge.
"""

__version__ = "0.1.0"
