"""dinosal: DINO saliency under classifier transfer, the library behind the book.

Floors, enforced: nothing imports upwards. ``make test`` runs ``lint-imports``
with the layers contracts in ``pyproject.toml`` (``[tool.importlinter]``),
which name every module of the package, before pytest; names separated by
``|`` sit side by side and must not import each other; a base line under a
floor holds what its siblings stand on.

* floor 4 -- ``cli`` (``python -m dinosal.train``, ``python -m
  dinosal.cli weights|release|verify``) | ``widgets`` (the explorer) |
  ``chapter`` (what every chapter notebook sets up);
* floor 3 -- ``transfers`` (named transfer models, ``<parent>__<task>``:
  a zoo model fine-tuned or probed on a task, resolved like the zoo's; the
  validation grid of a task) over ``transfer_sets`` (the tasks' training,
  validation and test sets; the pre-registered images and regions) over
  ``zoo`` (named models, resolved from the run cache, then the
  repository's released checkpoints, then training; the catalogue of what
  a profile trains), standing on ``release`` (``weights/``: export,
  verify, materialise, load);
* floor 2 -- ``train`` (the DINO trainer, classifier transfer) | ``localisation`` (run the
  saliency methods, score one image, summarise a set) | ``baselines``
  (pixel LOST, centred box) | ``knn`` (DINO's weighted k-NN) |
  ``viz_panels`` (figures that set models side by side, one colour scale per
  panel kind), over ``parts`` (per-part scores of any map: relevance mass
  and rank accuracy, pointing game, mass ratio, overall activation,
  measurability), standing on its base ``saliency`` (attention, LOST,
  TokenCut, class maps) | ``viz``;
* floor 1 -- ``models`` | ``features`` | ``losses`` | ``schedules`` |
  ``metrics`` | ``stats`` (the pre-registered hierarchical bootstrap,
  p-values, Holm, verdicts) | ``data``, standing on its base ``runs`` (run
  cache, atomic I/O);
* floor 0 -- ``config`` (resolve a chapter's parameters) over ``profiles``
  (the chapter tables and DINO recipes, plain data) over ``params`` (how a
  parameter is declared; imports nothing of dinosal).

Inside the packages the same rule holds, with contracts of their own:
``train`` (``__main__`` over ``dino`` | ``transfer`` over ``monitor`` |
``sampling`` | ``updates`` | ``runtime`` | ``transfer_data`` over
``transfer_config`` over ``dino_config``), ``saliency`` (methods over ``grid``),
``models`` (``checkpoints`` over ``heads`` | ``vit``), ``data``
(``export`` over ``readers`` | ``cache`` | ``stats`` | ``multicrop`` over
``synthetic`` over ``sample``), ``data.synthetic`` (``scenes`` over
``shapes`` over ``canvas`` over ``config``) and ``data.readers`` (one reader
per format over ``common``). The one exception: ``train/__main__`` is the
top floor's entry point living in the ``train`` package, so it may import
``cli``. ``ruff`` (pyflakes rules) runs with them.

Chapters import from the top floors; tests import anything.

Conventions everywhere: a token grid is ``(rows, cols)`` in row-major order;
boxes are ``xyxy`` pixels with an exclusive max; images are ``(H, W, 3)``
uint8 arrays or ``(B, 3, H, W)`` float tensors.
"""

from .config import chapter_params, resolve

__all__ = ["chapter_params", "resolve"]
__version__ = "0.1.0"
