"""Training (floor 2): :mod:`~dinosal.train.dino` is the DINO loop (CPU, one GPU, torchrun), standing on
its configuration (:mod:`~dinosal.train.dino_config`), collapse monitor (:mod:`~dinosal.train.monitor`),
data order (:mod:`~dinosal.train.sampling`) and update pieces (:mod:`~dinosal.train.updates`).
:mod:`~dinosal.train.transfer` is the classifier transfer (linear probe or fine-tune, CE, BCE or per-patch
BCE), standing on the same pieces plus its configuration (:mod:`~dinosal.train.transfer_config`) and its
transforms, targets and evaluation (:mod:`~dinosal.train.transfer_data`); what both trainers share about
processes and run folders is :mod:`~dinosal.train.runtime`.
``python -m dinosal.train`` runs the command line of :mod:`dinosal.cli`."""
