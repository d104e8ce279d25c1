"""Linear read-out of spike features: scikit-learn's ``LinearSVC`` (C = 2.4 in the paper).

The fitted classifier is kept as plain arrays (:class:`LinearReadout`), so trained models
are saved without pickling scikit-learn objects; prediction is ``argmax(x W^T + b)``,
exactly ``LinearSVC.predict`` for one-vs-rest multi-class problems.

Shifted copies (:func:`shifted_training_set`, :func:`predict_shifted`): the read-out can be
fitted on the features of the training images and of copies of them moved ``shift`` pixels
up, down, left or right, and an image is then classified by the summed scores of itself and
its four shifted copies. The network and its features are unchanged; the linear classifier
just sees each digit at the small offsets the pooling layers do not absorb. The training
copies can also come from the four diagonal directions (``directions=8``).

:class:`FeatureMemo` wraps a featurizer so that the features of each distinct image are
computed once: the fit, the shifted predictions and the reported features then share them.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .backends.svm import native_binary_svm
from .datasets import shift_images
from .learning._checks import check_float, check_int, check_tensor

if TYPE_CHECKING:  # scipy is imported lazily, with scikit-learn
    from scipy import sparse

__all__ = [
    "FeatureMemo",
    "LinearReadout",
    "fit_readout",
    "silent_fraction",
    "shift_offsets",
    "shifted_training_set",
    "predict_shifted",
    "shifted_readout_accuracy",
]

#: Stopping tolerance of the native dual solver (the largest projected-gradient gap),
#: liblinear's own default for this solver. Chosen by 3-fold cross-validation inside the
#: 6,000 training digits (the default read-out, three fold seeds, 9 folds): 0.1 classified
#: as well as 1e-2 on 6 folds and better on 3 (mean 97.99 % against 97.96 %), in about a
#: quarter fewer seconds; 1e-2 in turn had matched LinearSVC's 1e-4.
_DUAL_TOL = 0.1

#: A function from uint8 images ``[N, H, W]`` to features ``[N, ...]``.
Featurizer = Callable[[Tensor], Tensor]


@dataclass
class LinearReadout:
    """A fitted linear classifier.

    Attributes
    ----------
    weight : Tensor
        float64 ``[n_classes, n_features]`` (one row for binary problems).
    bias : Tensor
        float64 ``[n_classes]``.
    classes : Tensor
        int64 ``[n_classes]`` labels of the rows (two labels for binary problems).
    """

    weight: Tensor
    bias: Tensor
    classes: Tensor

    def scores(self, features: Tensor) -> Tensor:
        """Decision values ``x W^T + b``, float64 ``[N, n_classes]`` (``[N, 1]`` for two
        classes), of features ``[N, ...]`` (flattened)."""
        check_tensor("features", features)
        x = features.reshape(features.shape[0], -1)
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"features must have {self.weight.shape[1]} values per sample, got {x.shape[1]}"
            )
        # 64 rows at a time (6 MB of float64 at 12,150 features): a float64 copy of many bool
        # feature rows would be the run's memory peak (6,000 digits: 580 MB), and 25 MB
        # blocks (256 rows) left glibc holding up to 200 MB of freed heap after the fit
        if x.shape[0] == 0:
            return torch.empty(0, self.weight.shape[0], dtype=torch.float64) + self.bias
        return torch.cat([block.to(torch.float64) @ self.weight.T + self.bias for block in x.split(64)])

    def labels_of_scores(self, scores: Tensor) -> Tensor:
        """Labels ``[N]`` of decision values (as from :meth:`scores`, or a sum of them)."""
        check_tensor("scores", scores, 2, "[N, n_classes]")
        if scores.shape[1] != self.weight.shape[0]:
            raise ValueError(f"scores must have {self.weight.shape[0]} columns, got {scores.shape[1]}")
        if self.weight.shape[0] == 1:
            return self.classes[(scores[:, 0] > 0).long()]
        return self.classes[scores.argmax(dim=1)]

    def predict(self, features: Tensor) -> Tensor:
        """Predicted labels ``[N]`` of features ``[N, ...]`` (flattened)."""
        return self.labels_of_scores(self.scores(features))

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        """Fraction of correctly predicted ``labels``."""
        check_tensor("labels", labels, 1, "[N]")
        if labels.shape[0] != features.shape[0]:
            raise ValueError(f"labels must have {features.shape[0]} entries, got {labels.shape[0]}")
        if labels.numel() == 0:
            raise ValueError("labels must not be empty")
        return float((self.predict(features) == labels.to(torch.int64)).to(torch.float64).mean())

    def state_dict(self) -> Dict[str, Tensor]:
        """Tensors for saving."""
        return {"weight": self.weight, "bias": self.bias, "classes": self.classes}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Tensor]) -> "LinearReadout":
        """Inverse of :meth:`state_dict`."""
        return cls(state["weight"], state["bias"], state["classes"])


def fit_readout(
    features: Union[Tensor, Iterable[Tensor]],
    labels: Tensor,
    c: float = 2.4,
    seed: int = 0,
    max_iter: int = 1000,
) -> LinearReadout:
    """Fit the linear SVM of ``sklearn.svm.LinearSVC(C=c)`` on flattened features.

    The problem (one-vs-rest squared hinge, the intercept a regularised constant feature)
    is solved by liblinear's dual coordinate descent: for bool features by the native
    library (:func:`~stdp_plugins.backends.svm.native_binary_svm`: the column indices only,
    the classes on all of torch's threads, stopping at :data:`_DUAL_TOL`), else by
    ``LinearSVC(dual=True)``. On the
    default run's 18,000 feature rows the dual converged in about 500 passes to a lower
    objective than the primal Newton solver (``dual=False``, 154 s) reached, and the
    native solver needs no float64 or solver copy of the rows (the memory peak of the
    run). On poorly separable features (a barely trained network, nearly every feature
    on) the dual can run out of ``max_iter`` passes; ``LinearSVC``'s dual, then its
    primal solver, robust there, fit instead.

    Parameters
    ----------
    features : Tensor or iterable of Tensor
        ``[N, ...]`` features (e.g. bool spikes ``[N, 150, 9, 9]``), or chunks ``[n_i, ...]``
        of them in the order of ``labels`` (e.g. from :func:`shifted_training_set`); chunks
        go one by one into a sparse matrix, so the dense features of all rows never exist
        at once.
    labels : Tensor
        ``[N]`` integer labels with at least two classes.
    c : float
        Regularisation parameter ``C``.
    seed : int
        ``random_state`` of the solver (deterministic results).
    max_iter : int
        Iteration cap of the solver.
    """
    check_tensor("labels", labels, 1, "[N]")
    c = check_float("c", c, minimum=0.0, strict_min=True)
    check_int("max_iter", max_iter, minimum=1)
    if torch.unique(labels).numel() < 2:
        raise ValueError("labels must contain at least two classes")
    indptr, columns, values, width = _csr_parts([features] if isinstance(features, Tensor) else features)
    if indptr.size - 1 != labels.shape[0]:
        raise ValueError(f"labels must have {indptr.size - 1} entries (one per feature row), got {labels.shape[0]}")
    y = labels.cpu().numpy()
    classes = np.unique(y)
    if values is None:  # binary features: the native dual solver, on both cores
        fitted = native_binary_svm(indptr, columns, np.searchsorted(classes, y), classes.size, width, c, _DUAL_TOL,
                                   max_iter, seed)
        if fitted is not None and fitted[2] < max_iter:
            return LinearReadout(fitted[0], fitted[1], torch.from_numpy(classes.astype(np.int64)))
    from sklearn.exceptions import ConvergenceWarning  # imported here: the native path needs neither
    from sklearn.svm import LinearSVC

    x = _sparse_rows(indptr, columns, values, width)
    with warnings.catch_warnings():  # a dual that runs out of passes is replaced below
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm = LinearSVC(C=c, dual=True, random_state=seed, max_iter=max_iter).fit(x, y)
    if svm.n_iter_ >= max_iter:
        svm = LinearSVC(C=c, dual=False, random_state=seed, max_iter=max_iter).fit(x, y)
    return LinearReadout(
        torch.from_numpy(np.asarray(svm.coef_, dtype=np.float64)),
        torch.from_numpy(np.asarray(svm.intercept_, dtype=np.float64)),
        torch.from_numpy(np.asarray(svm.classes_, dtype=np.int64)),
    )


def _csr_parts(chunks: Iterable[Tensor]) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], int]:
    """CSR parts ``(indptr int64, column indices (uint16 up to 65,536 columns, else int32),
    float64 values or None, width)`` of
    feature chunks ``[n_i, ...]``, chunk by chunk.

    Spike features are sparse: only each chunk's non-zeros are kept, never a dense float64
    copy of the rows; when every chunk is bool only the column indices (values ``None``,
    all 1).
    """
    values: List[Tuple[int, np.ndarray]] = []  # (first entry, values) of non-bool chunks
    columns: List[np.ndarray] = []
    row_ends: List[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    width = None
    for index, chunk in enumerate(chunks):
        check_tensor(f"features chunk {index}", chunk)
        flat = chunk.detach().reshape(chunk.shape[0], -1).cpu().numpy()
        if width is None:
            width = flat.shape[1]
        elif flat.shape[1] != width:
            raise ValueError(f"features chunk {index} has {flat.shape[1]} values per sample, earlier chunks {width}")
        entries = np.flatnonzero(flat)  # one flat pass (about 3x quicker than a 2-D nonzero)
        if flat.dtype != np.bool_:
            values.append((int(row_ends[-1][-1]), flat.ravel()[entries].astype(np.float64)))
        columns.append((entries % max(width, 1)).astype(np.uint16 if width <= 65536 else np.int32))
        row_ends.append(row_ends[-1][-1] + np.cumsum(np.count_nonzero(flat, axis=1)))
    if width is None:
        raise ValueError("features must hold at least one chunk")
    indptr = np.concatenate(row_ends)
    # one chunk at a time into the final array: never two copies of all the indices
    indices = np.empty(int(indptr[-1]), dtype=np.uint16 if width <= 65536 else np.int32)
    for index, chunk_columns in enumerate(columns):
        start = int(row_ends[index][-1])
        indices[start: start + chunk_columns.size] = chunk_columns
        columns[index] = None
    data = None
    if values:
        data = np.ones(int(indptr[-1]))
        for start, chunk_values in values:
            data[start: start + chunk_values.size] = chunk_values
    return indptr, indices, data, width


def _sparse_rows(indptr: np.ndarray, columns: np.ndarray, values: Optional[np.ndarray],
                 width: int) -> "sparse.csr_matrix":
    """The float64 CSR matrix of :func:`_csr_parts` (values ``None``: all 1)."""
    from scipy import sparse

    data = np.ones(columns.size) if values is None else values
    return sparse.csr_matrix((data, columns.astype(np.int32), indptr), shape=(indptr.size - 1, width))


def shift_offsets(shift: int, directions: int = 4) -> List[Tuple[int, int]]:
    """``(dy, dx)`` of an image and its copies: ``(0, 0)`` first, then, for ``shift > 0``,
    ``shift`` pixels down, up, right and left and, with ``directions=8``, the four
    diagonals (down-right, down-left, up-right, up-left)."""
    shift = check_int("shift", shift, minimum=0)
    if directions not in (4, 8):
        raise ValueError(f"directions must be 4 or 8, got {directions!r}")
    if shift == 0:
        return [(0, 0)]
    straight = [(shift, 0), (-shift, 0), (0, shift), (0, -shift)]
    diagonal = [(shift, shift), (shift, -shift), (-shift, shift), (-shift, -shift)]
    return [(0, 0)] + straight + (diagonal if directions == 8 else [])


def _features_at(featurize: Featurizer, images: Tensor, dy: int, dx: int, batch_size: int) -> Iterator[Tensor]:
    """Features of ``images`` moved by ``(dy, dx)``, ``batch_size`` images at a time."""
    for chunk in images.split(batch_size):
        yield featurize(shift_images(chunk, dy, dx) if (dy, dx) != (0, 0) else chunk)


def shifted_training_set(
    featurize: Featurizer,
    images: Tensor,
    labels: Tensor,
    shift: int = 1,
    copies: int = 2,
    batch_size: int = 512,
    directions: int = 4,
) -> Tuple[Iterator[Tensor], Tensor]:
    """Features of ``images`` and of shifted copies of them, for :func:`fit_readout`.

    Image ``i`` gets ``copies`` of the ``directions`` shifted copies of
    :func:`shift_offsets`, taken round-robin (direction ``d`` when ``(d - copies * i) mod
    directions < copies``): with four directions and ``copies=2`` even images move down
    and up, odd ones right and left; with eight and ``copies=4`` (the CLI's default) even
    images move in the four straight directions, odd ones in the four diagonals.

    Parameters
    ----------
    featurize : callable
        Images ``[n, H, W]`` to features ``[n, ...]`` (e.g. ``net``, a
        :class:`~stdp_plugins.models.KheradpishehNet`).
    images : Tensor
        ``[N, H, W]`` training images.
    labels : Tensor
        ``[N]`` their labels.
    shift : int
        Pixels of the shifted copies; 0: the images only.
    copies : int
        Shifted copies per image, 1 to ``directions`` (ignored when ``shift`` is 0).
    batch_size : int
        Images per call of ``featurize``.
    directions : {4, 8}
        Straight shifts only, or the diagonals too.

    Returns
    -------
    (iterator of Tensor, Tensor)
        Lazily computed feature chunks (the images first, then the copies, direction by
        direction) and the matching labels ``[N + N * copies]``.
    """
    check_tensor("labels", labels, 1, "[N]")
    check_tensor("images", images, 3, "[N, H, W]")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must have {images.shape[0]} entries (one per image), got {labels.shape[0]}")
    offsets = shift_offsets(shift, directions)
    copies = check_int("copies", copies, minimum=1)
    if copies > directions:
        raise ValueError(f"copies must be 1 to {directions} (one per shift direction), got {copies}")
    check_int("batch_size", batch_size, minimum=1)
    index = torch.arange(images.shape[0])
    # direction d of offsets[1:] goes to the images whose round-robin run covers it
    chosen = [index] + [index[(d - index * copies) % directions < copies] for d in range(len(offsets) - 1)]
    chunks = (
        features
        for (dy, dx), rows in zip(offsets, chosen)
        for features in _features_at(featurize, images[rows], dy, dx, batch_size)
    )
    return chunks, torch.cat([labels[rows] for rows in chosen])


def predict_shifted(
    readout: LinearReadout,
    featurize: Featurizer,
    images: Tensor,
    shift: int = 1,
    batch_size: int = 512,
    features: Optional[Tensor] = None,
) -> Tensor:
    """Labels ``[N]`` of ``images`` from the summed scores of each image and its shifted copies.

    With ``shift=0`` this is ``readout.predict(featurize(images))``.

    Parameters
    ----------
    readout : LinearReadout
        The fitted classifier.
    featurize, images, shift, batch_size
        As in :func:`shifted_training_set`.
    features : Tensor, optional
        ``featurize(images)`` when the caller already has it (it is then not recomputed).
    """
    check_tensor("images", images, 3, "[N, H, W]")
    offsets = shift_offsets(shift)
    check_int("batch_size", batch_size, minimum=1)
    if features is not None and check_tensor("features", features).shape[0] != images.shape[0]:
        raise ValueError(f"features must have {images.shape[0]} rows (one per image), got {features.shape[0]}")
    total = readout.scores(features).cpu() if features is not None else None
    for dy, dx in offsets[0 if features is None else 1:]:
        scores = torch.cat([readout.scores(f).cpu() for f in _features_at(featurize, images, dy, dx, batch_size)])
        total = scores if total is None else total + scores
    return readout.labels_of_scores(total)


def shifted_readout_accuracy(
    featurize: Featurizer,
    train: Tuple[Tensor, Tensor],
    test: Tuple[Tensor, Tensor],
    shift: int = 1,
    copies: int = 2,
    c: float = 2.4,
    seed: int = 0,
    directions: int = 4,
) -> float:
    """Test accuracy of the read-out ``stdp-plugins train`` fits, for any featurizer.

    :func:`fit_readout` on :func:`shifted_training_set` of the training digits (``copies``
    shifted copies of each, by ``shift`` pixels), then :func:`predict_shifted` of the test
    digits (``shift=0``: the paper's plain read-out).

    Parameters
    ----------
    featurize : callable
        Images ``[N, H, W]`` to features ``[N, ...]`` (e.g. a SpikingJelly model's
        max-over-time output spikes).
    train, test : tuple of Tensor
        ``(images, labels)``.
    shift, copies, c, seed, directions
        As for :func:`shifted_training_set` and :func:`fit_readout`.

    Returns
    -------
    float
        The fraction of test digits classified correctly.
    """
    rows, labels = shifted_training_set(featurize, train[0], train[1], shift, copies, directions=directions)
    readout = fit_readout(rows, labels, c=c, seed=seed)
    predicted = predict_shifted(readout, featurize, test[0], shift)
    return float((predicted == test[1].to(torch.int64)).to(torch.float64).mean())


class FeatureMemo:
    """A featurizer that computes the features of each distinct image once.

    Features are kept bit-packed (1,519 bytes for the MNIST network's 12,150), keyed by a
    BLAKE2b digest of the image's bytes, so that the read-out's fit, its shifted
    predictions and the reported features share one extraction: a call computes only the
    images it has not seen, in one call of ``featurize``.

    Parameters
    ----------
    featurize : callable
        Images ``[n, H, W]`` to binary features ``[n, ...]`` (as :func:`shifted_training_set`).

    Attributes
    ----------
    computed : int
        Images featurized so far (repeats not counted).
    seconds : float
        Time spent in calls that featurized something.
    """

    def __init__(self, featurize: Featurizer) -> None:
        self._featurize = featurize
        self._rows: Dict[bytes, int] = {}  # digest -> row of _packed
        self._packed = np.zeros((0, 0), dtype=np.uint8)  # grown by doubling
        self._count = 0
        self._shape: Optional[Tuple[int, ...]] = None
        self.computed = 0
        self.seconds = 0.0

    def __call__(self, images: Tensor) -> Tensor:
        check_tensor("images", images, 3, "[n, H, W]")
        start = time.perf_counter()
        pixels = images.detach().cpu().contiguous().numpy()
        # one digest per image: a content key that cannot confuse two images
        keys = [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in pixels]
        missing = [i for i, key in enumerate(keys) if key not in self._rows]
        if missing:
            self._store([keys[i] for i in missing], self._featurize(images[torch.tensor(missing)]).cpu())
            self.seconds += time.perf_counter() - start
        if self._shape is None:
            return torch.empty(0, 0, dtype=torch.bool)
        rows = np.fromiter(map(self._rows.__getitem__, keys), dtype=np.int64, count=len(keys))
        width = math.prod(self._shape)
        bits = np.unpackbits(self._packed[rows], axis=1, count=width).astype(bool)
        return torch.from_numpy(bits).view(len(keys), *self._shape)

    def _store(self, keys: List[bytes], features: Tensor) -> None:
        if features.dtype != torch.bool and bool(((features != 0) & (features != 1)).any()):
            raise ValueError("featurize must return binary features (bool or 0/1)")
        if self._shape is not None and tuple(features.shape[1:]) != self._shape:
            raise ValueError(f"featurize returned features {tuple(features.shape[1:])}, earlier {self._shape}")
        self._shape = tuple(features.shape[1:])
        packed = np.packbits(features.reshape(len(keys), -1).to(torch.bool).numpy(), axis=1)
        end = self._count + len(keys)
        if end > self._packed.shape[0]:
            grown = np.zeros((max(end, 2 * self._packed.shape[0]), packed.shape[1]), dtype=np.uint8)
            if self._count:
                grown[:self._count] = self._packed[:self._count]
            self._packed = grown
        self._packed[self._count:end] = packed
        for row, key in enumerate(keys, self._count):
            self._rows.setdefault(key, row)  # a repeat within the batch keeps its first row
        self._count = end
        self.computed += len(keys)

    def images_per_second(self) -> float:
        """Images featurized per second of featurizing."""
        return self.computed / self.seconds if self.seconds > 0 else float("nan")


def silent_fraction(features: Tensor) -> float:
    """Fraction of samples whose features are all zero (the network stayed silent)."""
    check_tensor("features", features)
    if features.shape[0] == 0:
        return 0.0
    return float((~features.reshape(features.shape[0], -1).any(dim=1)).to(torch.float64).mean())
