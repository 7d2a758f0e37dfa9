"""Corpora: importers of public datasets into the kit's layout (``importers``) and the generated sample set
(``sample``). Never shipped to the scoring server.

    python -m lib.corpora <corpus> SRC OUT ...     import FF++, Celeb-DF, DFDC, DF40 or a plain folder
    python -m lib.corpora.sample --out data/sample  the labelled sample set the demo and the tests use
"""
