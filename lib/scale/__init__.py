"""Past one machine: preprocessing as tasks on a Dask cluster (``cluster``, an engine of ``lib.engines`` that
``lib.engines.make`` loads by name) and box reuse for training preprocessing (``boxreuse``). The only place that
imports Dask; never shipped to the scoring server."""
