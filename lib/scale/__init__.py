"""Past one machine: preprocessing as tasks on a Dask cluster (``cluster``) and box reuse for training
preprocessing (``boxreuse``). The only place that imports Dask; never shipped to the scoring server."""
