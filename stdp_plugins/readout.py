"""Linear read-out of spike features: scikit-learn's ``LinearSVC`` (C = 2.4 in the paper).

The fitted classifier is kept as plain arrays (:class:`LinearReadout`), so trained models
are saved without pickling scikit-learn objects; prediction is ``argmax(x W^T + b)``,
exactly ``LinearSVC.predict`` for one-vs-rest multi-class problems.

Shifted copies (:func:`shifted_training_set`, :func:`predict_shifted`): the read-out can be
fitted on the features of the training images and of copies of them moved ``shift`` pixels
up, down, left or right, and an image is then classified by the summed scores of itself and
its four shifted copies. The network and its features are unchanged; the linear classifier
just sees each digit at the small offsets the pooling layers do not absorb.
"""

from __future__ import annotations

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
    "LinearReadout",
    "fit_readout",
    "silent_fraction",
    "shift_offsets",
    "shifted_training_set",
    "predict_shifted",
    "shifted_readout_accuracy",
]

#: Stopping tolerance of the native dual solver (the largest projected-gradient gap). On the
#: default run's features 3-fold cross-validation inside the 6,000 training digits gave the
#: same accuracy at 1e-2 as at LinearSVC's 1e-4 (97.13 %, every fold equal) in half the
#: passes; liblinear's own default for this solver is 0.1.
_DUAL_TOL = 1e-2

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
        # 256 rows at a time (25 MB of float64 at 12,150 features): a float64 copy of many
        # bool feature rows would be the run's memory peak (6,000 digits: 580 MB)
        if x.shape[0] == 0:
            return torch.empty(0, self.weight.shape[0], dtype=torch.float64) + self.bias
        return torch.cat([block.to(torch.float64) @ self.weight.T + self.bias for block in x.split(256)])

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
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

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
    """CSR parts ``(indptr int64, column indices int32, float64 values or None, width)`` of
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
        columns.append((entries % max(width, 1)).astype(np.int32))
        row_ends.append(row_ends[-1][-1] + np.cumsum(np.count_nonzero(flat, axis=1)))
    if width is None:
        raise ValueError("features must hold at least one chunk")
    indptr = np.concatenate(row_ends)
    data = None
    if values:
        data = np.ones(int(indptr[-1]))
        for start, chunk_values in values:
            data[start: start + chunk_values.size] = chunk_values
    return indptr, np.concatenate(columns), data, width


def _sparse_rows(indptr: np.ndarray, columns: np.ndarray, values: Optional[np.ndarray],
                 width: int) -> "sparse.csr_matrix":
    """The float64 CSR matrix of :func:`_csr_parts` (values ``None``: all 1)."""
    from scipy import sparse

    data = np.ones(columns.size) if values is None else values
    return sparse.csr_matrix((data, columns, indptr), shape=(indptr.size - 1, width))


def shift_offsets(shift: int) -> List[Tuple[int, int]]:
    """``(dy, dx)`` of an image and its copies: ``(0, 0)`` first, then, for ``shift > 0``,
    ``shift`` pixels down, up, right and left."""
    shift = check_int("shift", shift, minimum=0)
    if shift == 0:
        return [(0, 0)]
    return [(0, 0), (shift, 0), (-shift, 0), (0, shift), (0, -shift)]


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
) -> Tuple[Iterator[Tensor], Tensor]:
    """Features of ``images`` and of shifted copies of them, for :func:`fit_readout`.

    Image ``i`` gets ``copies`` of the four shifted copies of :func:`shift_offsets`, taken
    round-robin: with ``copies=2`` even images move down and up, odd ones right and left,
    so each direction covers half the images at half the memory of all four.

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
        Shifted copies per image, 1 to 4 (ignored when ``shift`` is 0).
    batch_size : int
        Images per call of ``featurize``.

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
    offsets = shift_offsets(shift)
    copies = check_int("copies", copies, minimum=1)
    if copies > 4:
        raise ValueError(f"copies must be 1 to 4 (one per shift direction), got {copies}")
    check_int("batch_size", batch_size, minimum=1)
    index = torch.arange(images.shape[0])
    # direction d (0-3) of offsets[1:] goes to the images whose round-robin run covers it
    chosen = [index] + [index[(d - index * copies) % 4 < copies] for d in range(len(offsets) - 1)]
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
    shift, copies, c, seed
        As for :func:`shifted_training_set` and :func:`fit_readout`.

    Returns
    -------
    float
        The fraction of test digits classified correctly.
    """
    rows, labels = shifted_training_set(featurize, train[0], train[1], shift, copies)
    readout = fit_readout(rows, labels, c=c, seed=seed)
    predicted = predict_shifted(readout, featurize, test[0], shift)
    return float((predicted == test[1].to(torch.int64)).to(torch.float64).mean())


def silent_fraction(features: Tensor) -> float:
    """Fraction of samples whose features are all zero (the network stayed silent)."""
    check_tensor("features", features)
    if features.shape[0] == 0:
        return 0.0
    return float((~features.reshape(features.shape[0], -1).any(dim=1)).to(torch.float64).mean())
