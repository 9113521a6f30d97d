"""dinosal: DINO saliency under classifier transfer, the library behind the book.

Three floors, nothing imports upwards:

* floor 1: ``config``/``profiles``, ``models``, ``data``, ``losses``,
  ``schedules``, ``metrics``;
* floor 2: ``features`` (taps), ``saliency`` (attention, LOST, TokenCut,
  class maps), ``viz``, ``runs``;
* floor 3: ``train`` (DINO loop, transfer), ``widgets``.

Conventions everywhere: a token grid is ``(rows, cols)`` in row-major order;
boxes are ``xyxy`` pixels with an exclusive max; images are ``(H, W, 3)``
uint8 arrays or ``(B, 3, H, W)`` float tensors.
"""

from .config import chapter_params, resolve

__all__ = ["chapter_params", "resolve"]
__version__ = "0.1.0"
