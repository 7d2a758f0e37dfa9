"""Looking at data, runs and models: EDA of a folder (``eda``), the error analysis of a run (``analysis``), figures
(``plots``), combining runs (``ensemble``) and JupyterLab (``lab``). Never shipped to the scoring server."""
