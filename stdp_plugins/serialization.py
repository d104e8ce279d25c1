"""The files of a trained network, ``model.pt`` and ``checkpoint.pt``, and loading their
weights into a SpikingJelly or snnTorch model.

Both are plain :func:`torch.save` files of one dict of tensors, numbers, strings, lists and
dicts, so ``torch.load(path, weights_only=True)`` opens them without this package. Next to
the content (``"kind"``, ``"model_config"``, ``"weights": {"conv1": ..., "conv2": ...}``,
...) the dict holds ``"format": "stdp-plugins"``, the format ``"version"`` and
``"sha256"``, a digest of everything else in it (every tensor's dtype, shape and bytes,
every key, number and string). :func:`load_checkpoint` refuses a truncated, corrupted or
other-version file with :class:`CheckpointError` and returns nothing from it. Files are
written atomically (temporary file, ``fsync``, then ``os.replace``).

:func:`load_weights` copies the convolution weights of such a file, in layer order, onto
the ``nn.Conv2d`` layers of a user's own model of the same shape.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import threading
from pathlib import Path
from typing import Any, Dict, List, Union

import torch
from torch import Tensor, nn

__all__ = ["CHECKPOINT_VERSION", "FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "checkpoint_weights", "load_weights"]

#: Format version of ``model.pt`` and ``checkpoint.pt``; files of other versions are refused.
CHECKPOINT_VERSION = 2
#: Value of the ``"format"`` key of every file.
FORMAT = "stdp-plugins"
_RESERVED = ("format", "version", "sha256")
_VERSION1_MAGIC = b"STDPPLUG"  # version 1: a binary header in front of the torch payload
_MODEL_FILE = "model.pt"


class CheckpointError(ValueError):
    """A model or checkpoint file is missing, truncated, corrupted, of another format
    version or does not match the run or model it is loaded into."""


def _update(digest: "hashlib._Hash", value: Any, where: str) -> None:
    """Feed ``value`` into ``digest`` in a canonical, type-tagged encoding."""
    if isinstance(value, Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"t{flat.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"d{len(value)}".encode())
        for key in sorted(value, key=str):
            if not isinstance(key, str):
                raise TypeError(f"payload keys must be str, got {type(key).__name__} {key!r} in {where}")
            _update(digest, key, where)
            _update(digest, value[key], f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        digest.update(f"l{len(value)}".encode())
        for index, item in enumerate(value):
            _update(digest, item, f"{where}[{index}]")
    elif isinstance(value, str):
        data = value.encode()
        digest.update(f"s{len(data)}:".encode() + data)
    elif isinstance(value, bool) or value is None:
        digest.update(f"b{value}".encode())
    elif isinstance(value, int):
        digest.update(f"i{value};".encode())
    elif isinstance(value, float):
        digest.update(b"f" + struct.pack("<d", value) if math.isfinite(value) else f"f{value}".encode())
    else:
        raise TypeError(f"payload values must be tensors, numbers, strings, lists or dicts, got "
                        f"{type(value).__name__} at {where}")


def _digest(content: Dict[str, Any]) -> str:
    digest = hashlib.sha256()
    _update(digest, content, "payload")
    return digest.hexdigest()


def save_checkpoint(path: Union[str, os.PathLike], payload: Dict[str, Any]) -> Path:
    """Write ``payload`` (a dict of tensors, numbers, strings, lists and dicts) atomically to
    ``path`` as a ``weights_only``-loadable file with its format, version and SHA-256.

    The file is written to a temporary name in the same folder, flushed to disk and renamed
    over ``path``, so a crash leaves either the old or the new file, never half.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    clash = [key for key in _RESERVED if key in payload]
    if clash:
        raise ValueError(f"payload must not use the reserved keys {clash}")
    content = {key: (value.detach().cpu() if isinstance(value, Tensor) else value) for key, value in payload.items()}
    record = {**content, "format": FORMAT, "version": CHECKPOINT_VERSION, "sha256": _digest(content)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a file written by :func:`save_checkpoint`, verifying it completely first; returns
    its content without the ``format``, ``version`` and ``sha256`` keys.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated or corrupted (unreadable, or a SHA-256
        mismatch), not an stdp-plugins file, or of another format version.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(_VERSION1_MAGIC))
            handle.seek(0)
            size = os.fstat(handle.fileno()).st_size
            if start == _VERSION1_MAGIC:
                raise CheckpointError(f"{path}: format version 1 (an earlier stdp-plugins), this stdp-plugins reads "
                                      f"version {CHECKPOINT_VERSION}; train again to write a current file")
            if size == 0:
                raise CheckpointError(f"{path}: truncated file (0 bytes)")
            record = torch.load(handle, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    except CheckpointError:
        raise
    except Exception as exc:  # whatever torch raises on a damaged archive: report, never half-load
        raise CheckpointError(f"{path}: truncated or corrupted file, not a readable torch archive ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(f"{path}: not an stdp-plugins model or checkpoint file (format {found!r})")
    if record.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: format version {record.get('version')!r}, this stdp-plugins reads "
                              f"version {CHECKPOINT_VERSION}")
    content = {key: value for key, value in record.items() if key not in _RESERVED}
    try:
        intact = record.get("sha256") == _digest(content)
    except TypeError:
        intact = False
    if not intact:
        raise CheckpointError(f"{path}: corrupted file (SHA-256 of its content does not match the one stored)")
    return content


def checkpoint_weights(payload: Dict[str, Any], source: str = "file") -> List[Tensor]:
    """The convolution weights ``[conv1, conv2, ...]`` of a loaded model or checkpoint
    payload, in layer order; raises :class:`CheckpointError` if they are missing or not
    numbered ``conv1 .. convN``."""
    weights = payload.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{source}: no 'weights' in the file")
    expected = [f"conv{layer}" for layer in range(1, len(weights) + 1)]
    if sorted(weights) != sorted(expected) or not all(isinstance(weights[k], Tensor) and weights[k].dim() == 4
                                                      for k in expected):
        raise CheckpointError(f"{source}: weights must be 4-D tensors named {expected}, got {sorted(weights)}")
    return [weights[name] for name in expected]


def load_weights(source: Union[str, os.PathLike], model: nn.Module) -> List[str]:
    """Copy a trained network's weights onto the ``nn.Conv2d`` layers of ``model``.

    The reference network's convolutions (``conv1``, ``conv2``, ...) are copied, in order,
    onto ``model``'s ``nn.Conv2d`` modules in :meth:`~torch.nn.Module.named_modules` order
    (SpikingJelly's ``layer.Conv2d`` is one), e.g. a SpikingJelly or snnTorch version of
    the network. All shapes are checked before anything is copied.

    Parameters
    ----------
    source : path
        A folder written by ``stdp-plugins train`` (its ``model.pt`` is read) or a
        ``model.pt`` / ``checkpoint.pt`` file.
    model : nn.Module
        The model to load into; its weights keep their dtype and device.

    Returns
    -------
    list of str
        The names of the modules that were loaded, in layer order.

    Raises
    ------
    CheckpointError
        If the file is missing, damaged or holds no weights.
    ValueError
        If ``model`` has another number of ``nn.Conv2d`` layers or another shape of
        weights (the message names the module and both shapes).

    Examples
    --------
    >>> from stdp_plugins import load_weights
    >>> load_weights("stdp-run", my_spikingjelly_model)
    ['conv1', 'conv2']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(source)
    if path.is_dir():
        path = path / _MODEL_FILE
    weights = checkpoint_weights(load_checkpoint(path), str(path))
    convs = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if len(convs) != len(weights):
        raise ValueError(f"model has {len(convs)} nn.Conv2d layers ({', '.join(n for n, _ in convs) or 'none'}), "
                         f"{path} holds {len(weights)} (conv1 .. conv{len(weights)})")
    for layer, ((name, conv), weight) in enumerate(zip(convs, weights), start=1):
        if tuple(conv.weight.shape) != tuple(weight.shape):
            raise ValueError(f"model's {name} has weights of shape {tuple(conv.weight.shape)}, "
                             f"conv{layer} of {path} has {tuple(weight.shape)}")
    with torch.no_grad():
        for (_, conv), weight in zip(convs, weights):
            conv.weight.copy_(weight)
    return [name for name, _ in convs]
