"""One training run per (pooling, seed): fresh, resumed or read back."""

from __future__ import annotations

import functools
import time

import jax
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from examples.train.checkpoints import RunCheckpoints
from examples.train.data import Data
from examples.train.model import CNN, correct_count, inference_view, train_step
from examples.train.parallel import Parallel, padded
from jaxpool import nnx as jpnnx


@functools.cache
def adam(lr: float) -> optax.GradientTransformation:
  """One transform per learning rate: the optimizer's transform is static
  in the train step's graph, so a new one per run would recompile it."""
  return optax.adam(lr)


def new_run(pool: str, seed: int, data: Data, args, parallel: Parallel):
  """A fresh model and optimizer for (pool, seed), replicated on the mesh."""
  model = CNN(pool, spatial=data.spatial, head=args.head, rngs=nnx.Rngs(seed))
  if args.head == "netvlad":  # the official start: k-means on sample descriptors
    sample = inference_view(model).trunk(data.x_train[:256])
    model.global_pool.initialize(sample, key=jax.random.key(seed))
  optimizer = nnx.Optimizer(model, adam(args.lr), wrt=nnx.Param)
  parallel.replicate(model, optimizer)
  return model, optimizer


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The training order of one epoch: a function of (seed, epoch) alone, so
  a resumed run sees the batches an uninterrupted one would."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def run_fingerprint(data: Data, args) -> dict:
  """What a checkpoint must agree on to be resumed."""
  return {
    "dataset": data.name,
    "spatial": list(data.spatial),
    "head": args.head,
    "batch_size": args.batch_size,
    "lr": args.lr,
  }


def train_one(pool: str, seed: int, data: Data, args, parallel: Parallel) -> dict:
  """Trains (or resumes, or reads back) one run; returns its metrics."""
  model, optimizer = new_run(pool, seed, data, args, parallel)
  checkpoints = RunCheckpoints(args.out / "checkpoints" / pool / f"seed{seed}")
  fingerprint = run_fingerprint(data, args)
  record = {
    "fingerprint": fingerprint,
    "accuracy_per_epoch": [],
    "train_accuracy_per_epoch": [],
    "step_times_s": [],
    "train_time_s": 0.0,
  }
  done = checkpoints.latest_epoch()
  if done:
    record = checkpoints.restore(done, (model, optimizer))
    if record["fingerprint"] != fingerprint:
      checkpoints.close()
      raise SystemExit(
        f"{args.out}: the checkpoint of {pool} seed {seed} was trained with"
        f" {record['fingerprint']}, not {fingerprint}; use another --out or --fresh."
      )
    jpnnx.sync_dyno_shapes(model)  # learned sizes are static: re-derive them
    if done >= args.epochs:
      print(
        f"{pool} seed {seed}: complete in {args.out} ({done} epochs); reporting epoch {args.epochs}"
      )
    else:
      print(f"{pool} seed {seed}: resumed from epoch {done} of {args.epochs}")
  test_set = padded(data.x_test, data.y_test, parallel)
  train_set = padded(data.x_train, data.y_train, parallel)
  steps = len(data.x_train) // args.batch_size
  bar = tqdm(
    total=args.epochs * steps,
    initial=min(done, args.epochs) * steps,
    desc=f"{pool:>12} seed {seed}",
    mininterval=0.5,
    disable=args.quiet,
  )
  new_times = []
  for epoch in range(done, args.epochs):
    start = time.perf_counter()
    order = epoch_order(seed, epoch, len(data.x_train))
    for i in range(steps):
      batch = order[i * args.batch_size : (i + 1) * args.batch_size]
      images, labels = (parallel.shard(a[batch]) for a in (data.x_train, data.y_train))
      jax.block_until_ready((images, labels))  # the step time excludes the host's part
      tick = time.perf_counter()
      loss = train_step(model, optimizer, images, labels)
      loss.block_until_ready()
      new_times.append(time.perf_counter() - tick)
      bar.update()
      bar.set_postfix(loss=f"{float(loss):.3f}")
    # DynOPool's learned sizes: re-rounded once per epoch (a re-trace only
    # when one changes); a no-op for every other pooling.
    jpnnx.sync_dyno_shapes(model)
    record["train_time_s"] += time.perf_counter() - start
    # Both in inference mode (random poolings deterministic): their gap is
    # the generalisation gap reproduce.py compares.
    evaluated = inference_view(model)
    record["accuracy_per_epoch"].append(int(correct_count(evaluated, *test_set)) / len(data.x_test))
    record["train_accuracy_per_epoch"].append(
      int(correct_count(evaluated, *train_set)) / len(data.x_train)
    )
    # A process's first step compiles: left out, on resume too.
    record["step_times_s"] += new_times[1:] if epoch == done else new_times
    new_times = []
    checkpoints.save(epoch + 1, (model, optimizer), record)
  bar.close()
  checkpoints.close()
  curve = record["accuracy_per_epoch"][: args.epochs]
  times = record["step_times_s"] or [float("nan")]
  return {
    "test_accuracy": curve[-1],
    "train_accuracy": record["train_accuracy_per_epoch"][args.epochs - 1],
    "accuracy_per_epoch": curve,
    "train_time_s": record["train_time_s"],
    # The first step of a run compiles; the median of the rest is the cost.
    "step_time_ms": 1e3 * float(np.median(times)),
  }
