"""``python -m lib.corpora <corpus> SRC OUT ...``: import a public corpus (see ``lib.corpora.importers``)."""

from .importers import main

if __name__ == "__main__":
    main()
