"""``python -m lib.kernel build|check <exp>``: the same command as ``python -m lib.bundle``."""

from ..bundle.__main__ import main

if __name__ == "__main__":
    main()
