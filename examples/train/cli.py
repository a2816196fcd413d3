"""The trainer's command line: ``python -m examples.train --help``."""

from __future__ import annotations

import argparse
import pathlib
import shutil

import jax

from examples.train.data import DATASETS, load_data
from examples.train.model import HEADS
from examples.train.parallel import Parallel, barrier, initialize_distributed
from examples.train.report import summarise, write_report
from examples.train.run import train_one
from jaxpool import nnx as jpnnx

DESCRIPTION = "Train a small CNN once per pooling layer and seed, on bundled data."


def parse_args(argv):
  parser = argparse.ArgumentParser(
    prog="python -m examples.train",
    description=DESCRIPTION,
    epilog="Resuming: run again with the same --out. Multi-device: see examples/train/parallel.py.",
  )
  parser.add_argument(
    "--pool",
    action="append",
    choices=jpnnx.available_pools(),
    metavar="NAME",
    help="pooling layer to train with (repeatable): one of "
    f"{', '.join(jpnnx.available_pools())}; default: every one",
  )
  parser.add_argument(
    "--dataset",
    choices=DATASETS,
    default="digits",
    help="digits (2-D, 32x32) or mnist1d (1-D, length 40); default digits",
  )
  parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
  parser.add_argument(
    "--seeds",
    type=int,
    default=1,
    help="runs per pooling, with seeds --seed .. --seed + N - 1 (default 1)",
  )
  parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
  parser.add_argument(
    "--out",
    type=pathlib.Path,
    default=pathlib.Path("runs/train"),
    help="output folder: results, plot, checkpoints (default runs/train)",
  )
  parser.add_argument(
    "--fresh", action="store_true", help="delete the checkpoints under --out and start over"
  )
  parser.add_argument(
    "--batch-size",
    type=int,
    default=64,
    help="global batch size, split over the devices (default 64)",
  )
  parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
  parser.add_argument(
    "--size", type=int, default=32, help="digits: image side after upsampling (default 32)"
  )
  parser.add_argument(
    "--head",
    choices=HEADS,
    default="flatten",
    help="what the classifier reads: the flattened map (default), or a"
    " global pooling: average, GeM (a learned power per feature), LSE"
    " (log-sum-exp, learned sharpness), MAP (big_vision's attention"
    " pooling, 4 heads), covariance (iSQRT-COV), bilinear, compact bilinear,"
    " NetVLAD",
  )
  parser.add_argument(
    "--devices",
    type=int,
    default=None,
    help="train on the first N devices (single process; default: every device)",
  )
  parser.add_argument(
    "--distributed",
    action="store_true",
    help="multi-host: call jax.distributed.initialize() first (one process per host)",
  )
  parser.add_argument("--quiet", action="store_true", help="no progress bars")
  args = parser.parse_args(argv)
  if args.epochs < 1 or args.seeds < 1:
    parser.error("--epochs and --seeds must be >= 1")
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.distributed:  # before anything touches a device
    initialize_distributed()
  try:
    parallel = Parallel(args.devices)
  except ValueError as error:
    raise SystemExit(f"--{error}") from None
  if args.batch_size % parallel.size:
    raise SystemExit(
      f"--batch-size {args.batch_size} must be a multiple of the"
      f" {parallel.size} devices it is split over."
    )
  if args.fresh and (args.out / "checkpoints").exists() and jax.process_index() == 0:
    shutil.rmtree(args.out / "checkpoints")
  barrier("fresh")  # nobody reads the checkpoints before process 0 deleted them
  pools = args.pool or list(jpnnx.available_pools())
  seeds = list(range(args.seed, args.seed + args.seeds))
  data = load_data(args.dataset, args.size)
  print(
    f"{data.describe()}; {args.epochs} epochs; seeds {seeds}; head {args.head};"
    f" {parallel.describe()}"
  )
  results = {}
  for pool in pools:
    per_seed = {str(seed): train_one(pool, seed, data, args, parallel) for seed in seeds}
    results[pool] = summarise(per_seed)
  if jax.process_index() == 0:
    write_report(results, data, args, parallel)
  return results
