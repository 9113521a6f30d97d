"""``python -m dinosal.train`` (and ``torchrun -m dinosal.train``): the training command of :mod:`dinosal.cli`.

An entry point, not part of the trainer: it stands on the top floor with
:mod:`dinosal.cli` (the import-linter contract in ``pyproject.toml`` lets
this one module import it).
"""

from ..cli import main

if __name__ == "__main__":
    raise SystemExit(main())
