"""Command lines of the library (the top floor: it may import anything below).

``python -m dinosal.train --recipe PROFILE:NAME --run-dir DIR`` trains the
zoo recipe ``NAME`` of profile ``PROFILE`` (:data:`dinosal.profiles.DINO_RECIPES`)
with :func:`dinosal.train.dino.train_dino`; run again with the same
``--run-dir`` it resumes. One process runs on CPU or one GPU; several run
under ``torchrun --nproc_per_node=N -m dinosal.train ...`` (every process
runs this; NCCL on GPUs, gloo on CPU). ``--set field=value`` overrides
:class:`~dinosal.train.dino_config.DinoConfig` fields; ``--help-config``
lists them with their help text.

The command line lives here, not in the trainer, because it resolves a zoo
recipe: :mod:`dinosal.zoo` stands on the trainer, so the trainer must not
import it.

``python -m dinosal.cli COMMAND`` (:func:`release_main`) handles the released
checkpoints (:mod:`dinosal.release`):

* ``weights [--profile cpu] [--names ...] [--force]`` (``make weights``):
  train every model the profile releases into the run cache (resumable;
  progress bars), replacing artifacts that were materialised from the
  release (``--force``: every one), then print each model's held-out metrics
  beside the released ones;
* ``release --from-cache [--profile cpu] [--names ...] [--dtype float16]``
  (``make release``): write ``weights/<name>/`` and the manifest from the
  run cache: every DINO model of the catalogue (one missing from the run
  cache is an error: ``make weights``), then every transfer of
  ``dinosal.transfers.catalogue(profile)`` the run cache holds (one missing
  is named and skipped: transfers are trained by ``transfers`` below; a
  linear probe is released head-only, its frozen backbone being its
  parent's), then the validation grid's table of every task and mode the
  transfer chapter selects (``dinosal.transfers.selection_catalogue``; the
  tables, not the candidates; one missing is named and skipped: ``transfers
  --select`` runs them), then the score tables of
  ``dinosal.run_scores.catalogue(profile)`` the run cache holds (one missing
  is named and skipped); ``--prune`` withdraws the profile's entries that no
  catalogue lists any more (``release.withdraw``: sha256 checked first);
  snapshots as ``zoo.release_snapshots`` /
  ``transfers.release_snapshots`` decide; tensors in float16 but for the
  models of ``profiles.RELEASE_FLOAT32`` (with the reason for each); the total size is printed against
  :data:`SIZE_BUDGET_BYTES`;
* ``scores [--profile cpu] [--available-only] [--threads N]``: score every
  run of the findings chapter (``dinosal.run_scores.study_runs``) into the
  run cache, training a run that is not trained yet unless
  ``--available-only``;
* ``verify [--profile P]``: check the sha256 of every released file (exit 1
  on a mismatch), and name each head-only probe whose DINO parent is not
  released (loading it would train the parent);
* ``transfers [--profile cpu] [--names ...] [--seeds 0 1] [--parent-seeds ...]
  [--select] [--no-probes]``: train (or find) the transfer models of
  :mod:`dinosal.transfers` into the run cache, so that the transfer chapter
  finds them; ``--select`` first runs each task's validation grid and trains
  with its winners (as the chapter's ``select``). ``--names`` may also name
  the findings chapter's controls (``dinosal.transfers.controls``), which
  ``--select`` trains with the winners of the arm each controls.

The models a profile releases come from ``dinosal.zoo.catalogue(profile) ->
list[tuple[str, TrainSpec]]`` (name, training spec). Held-out metrics come
from the artifact manifest's ``"metrics"`` (measured right after training)
when it has them, else from ``dinosal.zoo.held_out_metrics(spec,
model) -> dict[str, float]`` when that exists, else none.
"""

from __future__ import annotations

import argparse
import dataclasses
import ast
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch.distributed as dist

from . import release, runs, zoo
from .train.dino import CHECKPOINT, config_help, train_dino
from .profiles import RELEASE_FLOAT32

__all__ = ["main", "release_main"]

PROG = "python -m dinosal.train"


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dinosal.train --recipe PROFILE:NAME --run-dir DIR``.

    One process: CPU or one GPU. Several: ``torchrun --nproc_per_node=N -m
    dinosal.train ...`` (every process runs this; NCCL on GPUs, gloo on
    CPU). ``--set field=value`` overrides :class:`DinoConfig` fields;
    ``--help-config`` lists them with their help text.
    """
    ap = argparse.ArgumentParser(prog=PROG, description=main.__doc__.split("\n")[0])
    ap.add_argument("--recipe", help="PROFILE:NAME of dinosal.profiles.DINO_RECIPES, e.g. cpu:dino_world")
    ap.add_argument("--run-dir", help="checkpoint.pth and log.csv go here; an existing checkpoint is resumed")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="DinoConfig overrides (python literals)")
    ap.add_argument("--help-config", action="store_true", help="list DinoConfig fields and exit")
    args = ap.parse_args(argv)
    if args.help_config:
        print(config_help())
        return 0
    if not args.recipe or not args.run_dir or ":" not in args.recipe:
        ap.error("--recipe PROFILE:NAME and --run-dir are required")

    profile, name = args.recipe.split(":", 1)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = _literal(v)
    spec = zoo.train_spec(zoo.recipe(name, profile), **overrides)
    started_here = not dist.is_initialized()
    try:
        result = train_dino(spec.dino, zoo.training_set(spec), run_dir=args.run_dir)
        if not dist.is_initialized() or dist.get_rank() == 0:
            last = result.log[-1] if result.log else {}
            print(f"{result.stopped} after {result.steps}/{result.total_steps} steps in {result.seconds:.0f} s; "
                  f"loss {last.get('loss', float('nan')):.4f}, teacher entropy {last.get('teacher_entropy', float('nan')):.3f}")
    finally:
        if started_here and dist.is_initialized():
            dist.destroy_process_group()
    return 0


# ---- released checkpoints: python -m dinosal.cli {weights,release,verify}

RELEASE_PROG = "python -m dinosal.cli"
SIZE_BUDGET_BYTES = 100 * 10**6
"""The whole release (every model of the study) should stay under 100 MB."""


class _CliError(RuntimeError):
    pass


def _catalogue(profile: str, names: Optional[Sequence[str]]) -> list[tuple[str, object]]:
    """``[(name, TrainSpec)]`` of the models ``profile`` releases (``zoo.catalogue``), filtered by ``names``."""
    hook = getattr(zoo, "catalogue", None)
    if hook is None:
        raise _CliError("dinosal.zoo.catalogue is not defined yet: the release commands need "
                        "catalogue(profile) -> list[tuple[str, TrainSpec]] (name, training spec of every model "
                        "the profile releases)")
    models = [(str(n), spec) for n, spec in hook(profile)]
    if names:
        unknown = sorted(set(names) - {n for n, _ in models})
        if unknown:
            raise _CliError(f"profile {profile!r} releases no model {unknown}; it has {[n for n, _ in models]}")
        models = [(n, spec) for n, spec in models if n in set(names)]
    return models


def _artifact(spec) -> Path:
    """Where the run cache keeps the DINO model of ``spec`` (it may not exist)."""
    return zoo.artifact_dir(spec)


def _metrics(name: str, spec, path: Path) -> dict:
    """Held-out metrics of a cached model (see the module doc), ``{}`` if nobody measures them."""
    stored = runs.read_manifest(path).get("metrics")
    if isinstance(stored, dict) and stored:
        return {k: float(v) for k, v in stored.items()}
    hook = getattr(zoo, "held_out_metrics", None)
    if hook is None:
        print(f"{name}: no held-out metrics (neither in {path / runs.MANIFEST} nor from zoo.held_out_metrics)",
              file=sys.stderr)
        return {}
    return {k: float(v) for k, v in hook(spec, release.load_artifact_backbone(path)).items()}


def _weights(args) -> int:
    from tqdm.auto import tqdm

    models = _catalogue(args.profile, args.names)
    retrained = {}
    for name, spec in tqdm(models, desc=f"models of {args.profile}", unit="model"):
        # threads are run control (same key); two threads on a busy 2-core machine are several times slower:
        # --threads, else the recipe's (cpu zoo models: 2, issue 13), else 1
        threads = args.threads if args.threads is not None else spec.dino.threads or 1
        spec = dataclasses.replace(spec, dino=spec.dino.replace(threads=threads))
        path = _artifact(spec)
        exists = (path / runs.MANIFEST).is_file()
        rebuild = exists and (args.force or not (path / CHECKPOINT).is_file())  # a materialised release: retrain
        tqdm.write(f"{name}: {'retraining' if rebuild else 'in the run cache' if exists else 'training'} ({path.name})")
        path = zoo.train_cached(spec, rebuild=rebuild, use_release=False)
        if not (path / CHECKPOINT).is_file():
            raise _CliError(f"{name}: zoo.train_cached gave {path} without {CHECKPOINT}: it must train, "
                            "not materialise the release")
        retrained[name] = _metrics(name, spec, path)
    released = {}
    for name, spec in models:
        entry = release.find(zoo.model_key(spec))
        if entry is None:
            entry = next((e for e in release.entries(args.profile) if e.name == name), None)
            if entry is not None:
                print(f"{name}: the released checkpoint has key {entry.key}, the recipe now gives "
                      f"{zoo.model_key(spec)}: release it again (make release)")
        released[name] = entry.metrics if entry is not None else {}
    table = release.compare(released, retrained)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}") if len(table) else "no metrics to compare")
    return 0


def _release(args) -> int:
    from tqdm.auto import tqdm

    from . import companions, run_scores, transfers

    models = _catalogue(args.profile, None)
    comps = companions.catalogue(args.profile)
    moved = transfers.catalogue(args.profile)
    grids = transfers.selection_catalogue(args.profile)
    tables = run_scores.catalogue(args.profile)
    every = [n for n, _ in models] + [n for n, _ in comps] + [n for n, _ in moved] + [n for n, _ in grids] + [n for n, _ in tables]
    if args.names:
        unknown = sorted(set(args.names) - set(every))
        if unknown:
            raise _CliError(f"profile {args.profile!r} releases no model {unknown}; it has {every}")
        models = [(n, spec) for n, spec in models if n in set(args.names)]
        comps = [(n, s) for n, s in comps if n in set(args.names)]
        moved = [(n, s) for n, s in moved if n in set(args.names)]
        grids = [(n, path) for n, path in grids if n in set(args.names)]
        tables = [(n, path) for n, path in tables if n in set(args.names)]
    missing = [f"{name} ({_artifact(spec)})" for name, spec in models if not (_artifact(spec) / runs.MANIFEST).is_file()]
    if missing:
        raise _CliError(f"not in the run cache: {', '.join(missing)}; train them first (make weights)")
    # --dtype, else float32 for the models that need it (profiles.RELEASE_FLOAT32, with the reasons), else float16
    def dtype_of(name: str) -> str:
        return args.dtype or ("float32" if name in RELEASE_FLOAT32 else release.DEFAULT_DTYPE)

    for name, spec in tqdm(models, desc=f"release {args.profile}", unit="model"):
        path = _artifact(spec)
        entry = release.export_artifact(path, name, args.profile, _metrics(name, spec, path), dtype=dtype_of(name),
                                        snapshots=zoo.release_snapshots(name, args.profile))
        tqdm.write(f"{name}: {entry.key}, {len(entry.files)} files, {entry.size_bytes / 1e6:.1f} MB ({entry.dtype})")
    untrained = []
    for name, s in tqdm(comps, desc=f"release {args.profile} companions", unit="model"):
        path = companions.artifact_dir(s)
        if not (path / runs.MANIFEST).is_file():
            untrained.append(name)
            tqdm.write(f"{name}: not in the run cache ({path}); skipped (train it with {RELEASE_PROG} companions "
                       f"--profile {args.profile} --names {name})")
            continue
        entry = release.export_artifact(path, name, args.profile, runs.read_manifest(path).get("metrics", {}),
                                        dtype=dtype_of(name), snapshots=False)
        tqdm.write(f"{name}: {entry.key}, {len(entry.files)} files, {entry.size_bytes / 1e6:.1f} MB ({entry.dtype})")
    if untrained:
        print(f"{len(untrained)} of {len(comps)} companions not in the run cache, not released: {', '.join(untrained)}")
    skipped = []
    for name, s in tqdm(moved, desc=f"release {args.profile} transfers", unit="model"):
        path = transfers.artifact_dir(s)
        if not (path / runs.MANIFEST).is_file():
            skipped.append(name)
            tqdm.write(f"{name}: not in the run cache ({path}); skipped (train it with {RELEASE_PROG} transfers "
                       f"--profile {args.profile})")
            continue
        entry = release.export_artifact(path, name, args.profile, dtype=dtype_of(name),
                                        snapshots=transfers.release_snapshots(name, args.profile))
        tqdm.write(f"{name}: {entry.key}, {len(entry.files)} files, {entry.size_bytes / 1e6:.1f} MB ({entry.dtype}"
                   f"{'; the head only: the backbone is its parent' if entry.head_only else ''})")
    if skipped:
        print(f"{len(skipped)} of {len(moved)} transfers not in the run cache, not released: {', '.join(skipped)}")
    unrun = []
    for name, path in grids:  # the validation grids' tables (kind transfer_selection), never their candidates
        if not (path / runs.MANIFEST).is_file():
            unrun.append(name)
            tqdm.write(f"{name}: the validation grid is not in the run cache ({path}); skipped (run it with "
                       f"{RELEASE_PROG} transfers --profile {args.profile} --select)")
            continue
        entry = release.export_artifact(path, name, args.profile)
        tqdm.write(f"{name}: {entry.key}, the validation grid's table, {entry.size_bytes / 1e3:.1f} kB")
    if unrun:
        print(f"{len(unrun)} of {len(grids)} validation grids not in the run cache, not released: {', '.join(unrun)}")
    unscored = []
    for name, path in tables:  # the score tables (kind scores)
        if not (path / runs.MANIFEST).is_file():
            unscored.append(name)
            tqdm.write(f"{name}: the score table is not in the run cache ({path}); skipped (dinosal.run_scores "
                       "computes it, e.g. when the findings chapter runs)")
            continue
        entry = release.export_artifact(path, name, args.profile)
        tqdm.write(f"{name}: {entry.key}, a score table, {entry.size_bytes / 1e3:.1f} kB")
    if unscored:
        print(f"{len(unscored)} of {len(tables)} score tables not in the run cache, not released: "
              f"{', '.join(unscored)}")
    stale = [e.name for e in release.entries(args.profile) if e.name not in set(every)]
    for name in stale if args.prune else ():
        release.withdraw(name)
        tqdm.write(f"{name}: in no catalogue of {args.profile}; withdrawn")
    if stale and not args.prune:
        print(f"{len(stale)} released entries of {args.profile} are in no catalogue (--prune withdraws them): "
              f"{', '.join(stale)}")
    everything = release.entries()
    total = sum(e.size_bytes for e in everything)
    print(f"{release.release_root()}: {len(everything)} entries, {total / 1e6:.1f} MB"
          f"{' -- over the 100 MB budget' if total > SIZE_BUDGET_BYTES else ''}")
    return 0


def _verify(args) -> int:
    from tqdm.auto import tqdm

    found = release.entries(args.profile)
    if not found:
        print(f"no released models in {release.release_root()}")
        return 0
    bad = 0
    dino_keys = {e.key for e in release.entries() if e.kind == "dino"}
    for entry in tqdm(found, desc="verify", unit="model"):
        try:
            release.verify(entry)
            tqdm.write(f"ok  {entry.name} ({entry.profile}, {entry.key}): {len(entry.files)} files, "
                       f"{entry.size_bytes / 1e6:.1f} MB")
        except (release.ReleaseIntegrityError, ValueError) as err:
            bad += 1
            tqdm.write(f"BAD {entry.name}: {err}")
            continue
        parent = _released_parent(entry)
        if parent is not None and parent not in dino_keys:
            tqdm.write(f"    {entry.name}: the head of a linear probe whose DINO parent (key {parent}) is not "
                       "released: loading it resolves the parent from the run cache, else trains it")
    print(f"{len(found) - bad} of {len(found)} released models verified")
    return 1 if bad else 0


def _released_parent(entry) -> Optional[str]:
    """The zoo key of a head-only probe's DINO parent (its ``config.json``'s ``parent``), else None."""
    if not entry.head_only:
        return None
    parent = json.loads((entry.folder / release.CONFIG_JSON).read_text()).get("parent", {})
    return parent.get("identity", {}).get("key") if parent.get("kind") == "dino" else None


def _scores(args) -> int:
    from tqdm.auto import tqdm

    from . import run_scores
    from .config import profile_params

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    P = profile_params("findings", args.profile)
    todo = [r for r in run_scores.study_runs(args.profile, P) + run_scores.companion_runs(args.profile)
            if not run_scores.is_cached(r.spec, args.profile, P.n_eval, P.eval_size, P.k, P.tau, P.data_root)]
    if args.available_only:
        waiting = [r.release_name for r in todo if not run_scores.model_available(r.spec)]
        todo = [r for r in todo if r.release_name not in set(waiting)]
        if waiting:
            print(f"{len(waiting)} runs are neither in the run cache nor released, not scored: {', '.join(waiting)}")
    for r in tqdm(todo, desc=f"score tables of {args.profile}", unit="run"):
        table = run_scores.scores(r.spec, args.profile, P.n_eval, P.eval_size, P.k, P.tau, P.data_root)
        tqdm.write(f"{r.release_name}: {len(table)} scenes scored")
    return 0


def _companions(args) -> int:
    from tqdm.auto import tqdm

    from . import companions

    every = companions.names(args.profile)
    chosen = args.names or every
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        raise _CliError(f"profile {args.profile!r} has no companion {unknown}; it has {every}")
    control = {"threads": args.threads} if args.threads is not None else {}
    for name in tqdm(chosen, desc=f"companions of {args.profile}", unit="model"):
        s = companions.spec(name, args.profile, **control)
        existed = (companions.artifact_dir(s) / runs.MANIFEST).is_file()
        path = companions.train_cached(s, use_release=not args.retrain, rebuild=args.retrain and existed)
        m = runs.read_manifest(path).get("metrics", {})
        tqdm.write(f"{name}: {path.name}" + (f", CorLoc {m['corloc']:.2f}" if "corloc" in m else ""))
    return 0


def _transfers(args) -> int:
    import itertools

    from tqdm.auto import tqdm

    from . import transfers

    every = transfers.names(args.profile) + transfers.controls(args.profile)
    names = args.names or transfers.names(args.profile, probes=not args.no_probes)
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise _CliError(f"profile {args.profile!r} has no transfer {unknown}; it has {every}")
    chosen = {}
    for task, mode in dict.fromkeys(transfers.parse(n)[1:] for n in names) if args.select else ():
        sel = transfers.select(task, args.profile, mode, data_root=args.data_root)
        chosen[task, mode] = sel.best
        tqdm.write(f"{task} ({mode}): the validation grid chose {sel.best} by {sel.metric}")
    todo = list(itertools.product(names, args.parent_seeds or [None], args.seeds))
    for name, ps, seed in tqdm(todo, desc=f"transfers of {args.profile}", unit="run"):
        _, task, mode = transfers.parse(name)
        s = transfers.spec(name, args.profile, parent_seed=ps, seed=seed, data_root=args.data_root,
                           threads=args.threads, **chosen.get((task, mode), {}))
        path, source = transfers.resolve(s)
        val = runs.read_manifest(path).get("metrics", {}).get("validation", {})
        tqdm.write(f"{name} (parent seed {'recipe' if ps is None else ps}, seed {seed}): {source} ({path.name}); "
                   f"validation mAP {val.get('map')}, top-1 {val.get('top1')}")
    return 0


def release_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dinosal.cli {weights,release,verify,transfers}``: the released checkpoints and the
    transfer models (see the module doc).

    Returns the exit status: 0 on success, 1 when verification fails or a
    command stops with an error (printed to stderr, naming the file or model).
    """
    ap = argparse.ArgumentParser(prog=RELEASE_PROG, description="The released checkpoints and tables under "
                                 "weights/: retrain the models (weights), write the DINO models, transfers (linear "
                                 "probes: their head only), validation grids and score tables from the run cache "
                                 "(release), check them (verify); the transfer models into the run cache (transfers).")
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("weights", help="train the released models into the run cache, compare held-out metrics")
    w.add_argument("--force", action="store_true", help="retrain models the run cache already holds, too")
    w.add_argument("--threads", type=int, default=None,
                   help="torch threads of each training (default: the recipe's, 2 for the cpu zoo models, else 1; "
                        "on a small CPU shared with other work use 1: more threads wait for busy cores; results "
                        "do not depend on it beyond float rounding)")
    r = sub.add_parser("release", help="write the release folder and manifest from the run cache: DINO models, "
                                       "transfers (a linear probe: its head only), validation grids, score tables")
    r.add_argument("--from-cache", action="store_true", help="take the models from the run cache (the only source)")
    r.add_argument("--prune", action="store_true", help="withdraw the profile's released entries that no catalogue "
                   "lists any more (their files are checked against their sha256 first)")
    r.add_argument("--dtype", default=None, choices=sorted(release.DTYPES),
                   help=f"dtype of the released tensors (default: float32 for the models of "
                        f"profiles.RELEASE_FLOAT32, which says why, else {release.DEFAULT_DTYPE})")
    for p in (w, r):
        p.add_argument("--profile", default="cpu", help="profile whose models are released (default: cpu)")
        p.add_argument("--names", nargs="*", help="only these models (default: every model of the catalogue; "
                                                  "release: also transfers, grids and score tables by name)")
    v = sub.add_parser("verify", help="check the sha256 of every released file (models, grids, score tables)")
    v.add_argument("--profile", default=None, help="only the entries of this profile")
    t = sub.add_parser("transfers", help="train (or find) the transfer models into the run cache")
    t.add_argument("--profile", default="cpu", help="profile whose transfers are trained (default: cpu)")
    t.add_argument("--names", nargs="*", help="only these transfers (default: every arm, and its probe; the "
                                              "controls of dinosal.transfers.controls only by name)")
    t.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="transfer seeds (default: 0 1)")
    t.add_argument("--parent-seeds", nargs="*", type=int, default=None,
                   help="pretraining seeds of the parents (default: each recipe's own)")
    t.add_argument("--select", action="store_true", help="run each task's validation grid first, train with its winners")
    t.add_argument("--no-probes", action="store_true", help="fine-tunes only")
    t.add_argument("--data-root", default=None, help="paper: the folder holding bdd100k/ and stanford_cars/")
    t.add_argument("--threads", type=int, default=None,
                   help="torch threads of each run (run control, no key change; 1 on a busy small CPU)")
    c = sub.add_parser("scores", help="score every run of the findings chapter into the run cache (the tables "
                                      "make release publishes; a run not trained yet is trained first)")
    c.add_argument("--profile", default="cpu", help="profile whose runs are scored (default: cpu)")
    c.add_argument("--available-only", action="store_true",
                   help="skip the runs whose model is neither in the run cache nor released (train nothing)")
    c.add_argument("--threads", type=int, default=None, help="torch threads (1 on a busy small CPU)")
    m = sub.add_parser("companions", help="train (or find) Mugs and LEWEL at the DINO recipes' budget into the run cache")
    m.add_argument("--profile", default="cpu", help="profile whose companions are trained (default: cpu)")
    m.add_argument("--names", nargs="*", help="only these (default: every companion, dinosal.companions.names)")
    m.add_argument("--retrain", action="store_true", help="train even when the run cache or the release has it")
    m.add_argument("--threads", type=int, default=None, help="torch threads of each run (run control, no key change)")
    args = ap.parse_args(argv)
    try:
        return {"weights": _weights, "release": _release, "verify": _verify,
                "transfers": _transfers, "scores": _scores, "companions": _companions}[args.command](args)
    except (_CliError, release.ReleaseIntegrityError, FileExistsError, FileNotFoundError) as err:
        print(f"{RELEASE_PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(release_main())
