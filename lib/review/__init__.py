"""Looking at data, runs and models: EDA of a folder (``eda``), the error analysis of a run (``analysis``), figures
(``plots``), combining runs (``ensemble``), JupyterLab (``lab``), and report.ipynb's pieces: curves with bootstrap
intervals (``curves``), the robustness grid (``robustness``), heat maps (``saliency``), per-video timelines
(``timeline``), the HTML page (``page``) and their wiring (``report``). Never shipped to the scoring server."""
