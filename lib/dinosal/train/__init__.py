"""Training (floor 2): :mod:`~dinosal.train.dino` is the DINO loop (CPU, one GPU, torchrun), standing on
its configuration (:mod:`~dinosal.train.dino_config`), collapse monitor (:mod:`~dinosal.train.monitor`),
data order (:mod:`~dinosal.train.sampling`) and update pieces (:mod:`~dinosal.train.updates`).
``python -m dinosal.train`` runs the command line of :mod:`dinosal.cli`."""
