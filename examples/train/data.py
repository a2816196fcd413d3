"""The trainer's datasets, made locally (nothing is downloaded)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

DATASETS = ("digits", "mnist1d")


@dataclasses.dataclass(frozen=True)
class Data:
  """A dataset as float32 ``(N, *spatial, 1)`` inputs and int32 labels."""

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray

  @property
  def spatial(self) -> tuple[int, ...]:
    return self.x_train.shape[1:-1]

  def describe(self) -> str:
    side = "x".join(map(str, self.spatial))
    return f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test at {side}"


def load_digits_data(size: int) -> Data:
  """Digits scaled to [0, 1], resized to ``size`` x ``size``, a fixed
  stratified 80/20 split (the seeds vary the initialisation and the order)."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  digits = load_digits()
  images = digits.images.astype(np.float32) / 16.0
  images = np.asarray(
    jax.image.resize(jnp.asarray(images)[..., None], (len(images), size, size, 1), "bilinear")
  )
  x_train, x_test, y_train, y_test = train_test_split(
    images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
  )
  return Data("digits", x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32))


def load_mnist1d_data() -> Data:
  """MNIST-1D generated locally with its default arguments (seed 42)."""
  from mnist1d.data import get_dataset_args, make_dataset

  data = make_dataset(get_dataset_args())  # builds the data; downloads nothing
  as_input = lambda a: np.asarray(a, np.float32)[..., None]  # noqa: E731
  return Data(
    "mnist1d",
    as_input(data["x"]),
    np.asarray(data["y"], np.int32),
    as_input(data["x_test"]),
    np.asarray(data["y_test"], np.int32),
  )


@functools.cache
def load_data(name: str, size: int) -> Data:
  """The dataset, built once per process (a process that trains several
  times, as reproduce.py and the tests do, shares it) and read-only."""
  if name == "digits":
    data = load_digits_data(size)
  elif name == "mnist1d":
    data = load_mnist1d_data()
  else:
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}.")
  for array in (data.x_train, data.y_train, data.x_test, data.y_test):
    array.flags.writeable = False
  return data
