"""Digit data sets: ``.npz`` files, MNIST IDX files and the embedded MNIST subset.

A data set is a pair ``(images, labels)``: ``images`` uint8 ``[N, H, W]`` grey values and
``labels`` int64 ``[N]``, both torch tensors.

Accepted files:

- ``.npz`` with arrays ``images`` (uint8 ``[N, H, W]``) and ``labels`` (integers ``[N]``);
- MNIST IDX image files (``*-images-idx3-ubyte`` or ``*-images.idx3-ubyte``, optionally
  ``.gz``) with the matching labels file (``images`` replaced by ``labels`` and ``idx3`` by
  ``idx1``) beside them.

Every problem is reported as :class:`DatasetError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile
from importlib import resources
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DatasetError",
    "EMBEDDED_TRAIN_SIZE",
    "load_dataset",
    "load_npz",
    "load_idx",
    "embedded_mnist",
    "embedded_split",
    "load_train_test",
    "shift_images",
]

PathLike = Union[str, os.PathLike]

#: Training digits of the embedded 8,000-digit subset (the first 6,000; the last 2,000 test).
EMBEDDED_TRAIN_SIZE = 6000

_IDX_UBYTE = 0x08


class DatasetError(ValueError):
    """A data file is missing, unreadable or does not hold a digit data set."""


def _check_pair(path: Path, images: np.ndarray, labels: np.ndarray) -> Tuple[Tensor, Tensor]:
    if images.dtype != np.uint8:
        raise DatasetError(f"{path}: images must be uint8 grey values, got dtype {images.dtype}")
    if images.ndim != 3 or min(images.shape) == 0:
        raise DatasetError(f"{path}: images must have shape [N, H, W] with N, H, W > 0, got {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{path}: images and labels must have the same length, got {images.shape[0]} and {labels.shape[0]}"
        )
    if labels.min() < 0:
        raise DatasetError(f"{path}: labels must be non-negative class indices, got {int(labels.min())}")
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64))


def load_npz(path: PathLike) -> Tuple[Tensor, Tensor]:
    """Load an ``.npz`` file with arrays ``images`` (uint8 ``[N, H, W]``) and ``labels``.

    Raises
    ------
    DatasetError
        If the file is missing, not a valid ``.npz`` or lacks / misshapes an array.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"images", "labels"} - set(archive.files)
            if missing:
                raise DatasetError(
                    f"{path}: an .npz data set needs arrays 'images' and 'labels', "
                    f"missing {sorted(missing)} (found {sorted(archive.files)})"
                )
            images, labels = archive["images"], archive["labels"]
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    return _check_pair(path, images, labels)


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc})") from exc
    if len(data) < 4:
        raise DatasetError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != _IDX_UBYTE:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (bad magic number {data[:4].hex()})")
    if ndim != expected_dims:
        raise DatasetError(f"{path}: expected an IDX file with {expected_dims} dimensions, got {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise DatasetError(
            f"{path}: IDX header announces shape {shape} ({size} bytes) but the file holds "
            f"{len(data) - header} bytes of data (truncated or corrupted)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _labels_path_for(images_path: Path) -> Path:
    name = images_path.name
    if "images" not in name or "idx3" not in name:
        raise DatasetError(
            f"{images_path}: an IDX image file must be named like '*-images-idx3-ubyte[.gz]' "
            "so that its labels file can be found beside it"
        )
    candidates = [images_path.with_name(name.replace("images", "labels").replace("idx3", "idx1"))]
    if name.endswith(".gz"):
        candidates.append(images_path.with_name(candidates[0].name[:-3]))
    else:
        candidates.append(images_path.with_name(candidates[0].name + ".gz"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{images_path}: labels file not found beside it (looked for {candidates[0].name})")


def load_idx(images_path: PathLike) -> Tuple[Tensor, Tensor]:
    """Load MNIST IDX images and the labels file beside them.

    Parameters
    ----------
    images_path : path
        ``*-images-idx3-ubyte`` or ``*-images-idx3-ubyte.gz`` (also ``*-images.idx3-ubyte``).

    Raises
    ------
    DatasetError
        If either file is missing, truncated or not an unsigned-byte IDX file.
    """
    images_path = Path(images_path)
    images = _read_idx(images_path, 3)
    labels_path = _labels_path_for(images_path)
    labels = _read_idx(labels_path, 1)
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{labels_path}: holds {labels.shape[0]} labels but {images_path.name} holds {images.shape[0]} images"
        )
    return _check_pair(images_path, images, labels)


def load_dataset(path: PathLike) -> Tuple[Tensor, Tensor]:
    """Load a data set from an ``.npz`` file or an MNIST IDX image file.

    Parameters
    ----------
    path : path
        ``*.npz`` or ``*idx3-ubyte[.gz]``.

    Returns
    -------
    images : Tensor
        uint8 ``[N, H, W]``.
    labels : Tensor
        int64 ``[N]``.

    Raises
    ------
    DatasetError
        With the file name and what is wrong.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".npz"):
        return load_npz(path)
    if "idx3" in name:
        return load_idx(path)
    raise DatasetError(
        f"{path}: unknown data file type; expected an .npz file or an MNIST '*-images-idx3-ubyte[.gz]' file"
    )


def embedded_mnist() -> Tuple[Tensor, Tensor]:
    """The 8,000 real MNIST digits shipped with the package (see ``EMBEDDED_TRAIN_SIZE``)."""
    resource = resources.files("stdp_plugins").joinpath("data", "mnist8k.npz")
    with resources.as_file(resource) as path:
        with open(path, "rb") as handle:
            payload = io.BytesIO(handle.read())
    with np.load(payload, allow_pickle=False) as archive:
        return _check_pair(Path(str(resource)), archive["images"], archive["labels"])


def embedded_split() -> Tuple[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor]]:
    """``((train_images, train_labels), (test_images, test_labels))`` of the embedded subset:
    the first 6,000 digits train, the last 2,000 test."""
    images, labels = embedded_mnist()
    cut = EMBEDDED_TRAIN_SIZE
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def load_train_test(
    data: Optional[PathLike] = None, test_data: Optional[PathLike] = None
) -> Tuple[Tuple[Tensor, Tensor], Optional[Tuple[Tensor, Tensor]]]:
    """Training and test digits as ``stdp-plugins train`` reads them.

    Parameters
    ----------
    data : path, optional
        Training set (``.npz`` or MNIST IDX, see :func:`load_dataset`); ``None``: the
        embedded split's 6,000 training digits (:func:`embedded_split`).
    test_data : path, optional
        Test set in the same formats; ``None``: the embedded 2,000 test digits when
        ``data`` is ``None``, else no test set.

    Returns
    -------
    tuple
        ``((train_images, train_labels), test)`` with ``test`` an ``(images, labels)``
        pair or ``None``.
    """
    if data is None:
        train, test = embedded_split()
    else:
        train, test = load_dataset(data), None
    if test_data is not None:
        test = load_dataset(test_data)
    return train, test


def shift_images(images: Tensor, dy: int, dx: int) -> Tensor:
    """Images moved ``dy`` pixels down and ``dx`` pixels right, with zeros moving in.

    Parameters
    ----------
    images : Tensor
        ``[N, H, W]`` grey images (any dtype).
    dy, dx : int
        Signed offsets; a negative ``dy`` moves up, a negative ``dx`` left. Their sizes must be
        below ``H`` and ``W``.

    Returns
    -------
    Tensor
        A new tensor shaped and typed like ``images``.
    """
    if not isinstance(images, Tensor) or images.dim() != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a [N, H, W] tensor, got {shape}")
    height, width = images.shape[1:]
    for name, offset, size in (("dy", dy, height), ("dx", dx, width)):
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"{name} must be an int, got {type(offset).__name__} {offset!r}")
        if abs(offset) >= size:
            raise ValueError(f"{name} must lie in (-{size}, {size}) for images of that size, got {offset}")
    shifted = torch.zeros_like(images)
    shifted[:, max(dy, 0): height + min(dy, 0), max(dx, 0): width + min(dx, 0)] = (
        images[:, max(-dy, 0): height + min(-dy, 0), max(-dx, 0): width + min(-dx, 0)]
    )
    return shifted
