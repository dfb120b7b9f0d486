"""One training loop for every chapter: progress, history, early stopping, checkpoints.

The loop is written by hand because it is part of what the course teaches: sample a
batch, predict, compute the loss, back-propagate, step (:func:`train_step`, one screen).
:func:`fit` runs epochs of it and keeps what a real project needs around those lines,
each in a helper of its own: checkpoints so that a training cut off (Colab disconnects)
can resume (:func:`save_checkpoint`, :func:`load_checkpoint`), early stopping on the validation
loss, mixed precision on CUDA, and a run record beside the weights (``run_dir=``).

Without ``device=``, :func:`fit` trains on the course's device
(:func:`~dlbio_teach.runtime.resolve_device`: ``$DLBIO_DEVICE``, else a GPU when there is
one, else the CPU), and so does every training built on it.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .records import RunRecord, save_weights
from .runtime import resolve_device

__all__ = ["History", "fit", "epoch_lr", "LR_SCHEDULES", "train_step", "as_tensors",
           "progress_bar", "save_checkpoint", "load_checkpoint"]


def progress_bar(iterable=None, **kwargs):
    """``tqdm.auto`` progress bar; plain text when ``DLBIO_WIDGETS=0`` (static outputs).

    Examples
    --------
    >>> bar = progress_bar(range(3), disable=True)
    >>> list(bar)
    [0, 1, 2]
    """
    if os.environ.get("DLBIO_WIDGETS", "").strip() == "0":
        from tqdm.std import tqdm
        kwargs.setdefault("mininterval", 5.0)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


@dataclass
class History:
    """Losses per epoch, and what early stopping decided.

    ``best_loss`` is the lowest loss that model selection watched: the validation loss
    when there is a validation set, else the training loss; ``monitored`` says which.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = float("inf")
    monitored: str = "validation"
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        """Epochs trained so far."""
        return len(self.train_loss)

    def to_dict(self) -> dict:
        """The history as plain data (stored in run records and checkpoints)."""
        return asdict(self)


def as_tensors(*arrays) -> tuple:
    """Turn NumPy arrays ``(N, Y, X)`` into tensors a network takes.

    Floating-point stacks get a channel axis ``(N, 1, Y, X)``; integer stacks (class
    labels) stay ``(N, Y, X)`` as int64; 1D integer arrays (patch classes) stay 1D.

    Examples
    --------
    >>> x, y = as_tensors(np.zeros((2, 8, 8), np.float32), np.zeros((2, 8, 8), np.uint8))
    >>> tuple(x.shape), y.dtype
    ((2, 1, 8, 8), torch.int64)
    """
    out = []
    for a in arrays:
        if isinstance(a, torch.Tensor):
            out.append(a)
            continue
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.isfinite(a)):
                raise ValueError("training data contains NaN or infinite values; clean or "
                                 "normalise the images first.")
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            out.append(t[:, None] if t.ndim == 3 else t)
        elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            out.append(torch.from_numpy(a.astype(np.int64)))
        else:
            raise ValueError(f"cannot train on dtype {a.dtype}; use float or integer arrays.")
    n = {len(t) for t in out}
    if len(n) != 1:
        raise ValueError(f"all arrays must hold the same number of samples, got {sorted(n)}.")
    return tuple(out)


def _augment(batch, generator):
    """Same random flip and 90-degree rotation for every tensor of a batch.

    Both act on the last two axes (Y, X) only: a batch of volumes ``(N, C, Z, Y, X)`` keeps
    its planes in order, since Z is often sampled more coarsely than Y and X.
    """
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    out = []
    for t in batch:
        if t.ndim < 3:
            out.append(t)
            continue
        if t.shape[-1] == t.shape[-2]:
            t = torch.rot90(t, k, dims=(-2, -1))
        out.append(torch.flip(t, dims=(-1,)) if flip else t)
    return out


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _to_device(tensor, device):
    # Images (and volumes) go channels-last: convolutions run faster in that layout (oneDNN
    # on CPUs, tensor cores on GPUs); the values are the same.
    if tensor.ndim in _CHANNELS_LAST and tensor.is_floating_point():
        return tensor.to(device, memory_format=_CHANNELS_LAST[tensor.ndim],
                         non_blocking=True)
    return tensor.to(device, non_blocking=True)


def _memory_format(model) -> torch.memory_format:
    """Channels-last for the weights: that of volumes when every convolution is 3D."""
    ranks = {p.dim() for p in model.parameters()} & set(_CHANNELS_LAST)
    return _CHANNELS_LAST[5] if ranks == {5} else _CHANNELS_LAST[4]


def train_step(model, batch, loss_fn, *, optimizer=None, scaler=None) -> torch.Tensor:
    """One step: predict, compute the loss, and (with an ``optimizer``) learn from it.

    ``batch`` is ``[inputs, *targets]`` on the model's device. Without an optimizer the
    loss is only computed (validation). On CUDA the forward pass runs in float16
    (mixed precision) and ``scaler`` scales the loss so that small gradients survive.

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x = torch.rand(4, 1, 8, 8)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> before = float(train_step(net, [x, x], torch.nn.functional.mse_loss))
    >>> _ = [train_step(net, [x, x], torch.nn.functional.mse_loss, optimizer=opt)
    ...      for _ in range(20)]
    >>> float(train_step(net, [x, x], torch.nn.functional.mse_loss)) < before
    True
    """
    device = batch[0].device
    # Mixed precision on CUDA only; elsewhere plain float32, with no autocast at all (some
    # devices have none).
    half = (torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda"
            else contextlib.nullcontext())
    with torch.set_grad_enabled(optimizer is not None), half:
        output = model(batch[0])                            # 1. predict
        loss = loss_fn(output.float(), *batch[1:])          # 2. compare with the target
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()                   # 3. gradients of the loss
            scaler.step(optimizer)                          # 4. step against them
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    return loss.detach()


def _run_epoch(model, tensors, loss_fn, *, batch_size, device, optimizer, scaler,
               generator, augment, transform):
    training = optimizer is not None
    model.train(training)
    n = len(tensors[0])
    order = torch.randperm(n, generator=generator) if training else torch.arange(n)
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if training and len(idx) < 2 and n >= 2:
            continue   # a batch of one breaks batch normalisation
        batch = [t[idx] for t in tensors]
        if training and augment:
            batch = _augment(batch, generator)
        if transform is not None:
            batch = transform(batch, generator)
        batch = [_to_device(t, device) for t in batch]
        loss = train_step(model, batch, loss_fn, optimizer=optimizer, scaler=scaler)
        total += float(loss) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def save_checkpoint(folder, *, model, optimizer, scaler, history: History) -> Path:
    """Write ``last.pt``: all that :func:`load_checkpoint` needs to resume a training.

    Model, optimiser and gradient-scaler states and the history, as tensors and plain
    data only (loaded with ``weights_only=True``); written to a temporary file first, so
    that a disconnect never leaves a half-written checkpoint.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "last.pt.tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "history": history.to_dict()}, tmp)
    os.replace(tmp, folder / "last.pt")
    return folder / "last.pt"


def load_checkpoint(folder, *, model, optimizer, scaler, device):
    """Restore what :func:`save_checkpoint` wrote; returns ``(history, best_state)``.

    ``(None, None)`` when the folder holds no checkpoint (a fresh start).
    """
    folder = Path(folder)
    if not (folder / "last.pt").exists():
        return None, None
    state = torch.load(folder / "last.pt", map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    best = None
    if (folder / "best.pt").exists():
        best = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
    return History(**state["history"]), best


def _write_run_record(model, history, *, run_dir, seed, settings, record):
    record = dict(record or {})
    hyperparameters = {**settings, **record.pop("hyperparameters", {})}
    RunRecord.create(model=model, history=history, seed=seed,
                     profile=record.pop("profile", None), hyperparameters=hyperparameters,
                     **record).save(run_dir)


#: The learning-rate schedules of :func:`fit` (see :func:`epoch_lr`).
LR_SCHEDULES = ("constant", "cosine")


def epoch_lr(epoch: int, *, lr: float, epochs: int, schedule: str = "constant") -> float:
    """The learning rate of ``epoch`` (counted from 0) in a training of ``epochs`` epochs.

    It depends on the epoch only, so a resumed training takes the same steps.

    Examples
    --------
    >>> [round(epoch_lr(e, lr=1.0, epochs=4, schedule="cosine"), 3) for e in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    >>> epoch_lr(3, lr=1.0, epochs=4)
    1.0
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}.")
    if schedule == "constant":
        return float(lr)
    return float(lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def fit(model: torch.nn.Module, train_data, val_data=None, *, loss_fn, epochs: int,
        batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.0,
        lr_schedule: str = "constant", device=None, patience: int | None = None,
        augment: bool = False, transform=None, checkpoint_dir=None, resume: bool = False,
        seed: int = 0, progress: bool = True, run_dir=None,
        record: Mapping | None = None) -> History:
    """Train ``model`` and return its :class:`History`; the model ends with its best weights.

    Parameters
    ----------
    model : torch.nn.Module
        The network; it is moved to ``device`` and stays there.
    train_data, val_data : tuple of arrays
        ``(inputs, targets, ...)`` stacks with the same first axis (see :func:`as_tensors`);
        the model sees ``inputs``, and ``loss_fn(output, targets, ...)`` gets the rest.
    loss_fn : callable
        ``loss_fn(output, *targets) -> scalar tensor``.
    epochs : int
        Maximum passes over ``train_data``.
    batch_size, lr, weight_decay : training hyper-parameters (Adam optimiser).
    lr_schedule : {"constant", "cosine"}
        ``"cosine"`` lowers the learning rate from ``lr`` towards 0 along half a cosine
        over the epochs (:func:`epoch_lr`). The last epochs then take small steps, so the
        weights settle instead of moving by a full step to the end: two trainings that
        differ only in rounding (another CPU, another seed) end closer together.
    device : str or torch.device, optional
        Where to train. Default: the course's device
        (:func:`~dlbio_teach.runtime.resolve_device`: ``$DLBIO_DEVICE``, else a GPU when
        there is one, else the CPU), the device ``setup_course`` prints.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs.
    augment : bool
        Random flips and 90-degree rotations of each batch.
    transform : callable, optional
        ``transform(batch, generator) -> batch``, applied to every batch after
        augmentation: builds inputs that change at each step (the Noise2Void mask).
        Validation batches get a generator of fixed seed, so their loss is comparable
        from epoch to epoch.
    checkpoint_dir : path, optional
        Writes ``best.pt`` (weights of the best validation epoch) and ``last.pt`` (all that
        is needed to resume) after each epoch.
    resume : bool
        Continue from ``checkpoint_dir/last.pt`` if it exists (after a Colab disconnect).
    seed : int
        Seeds the batch order and augmentation of each epoch, so that a resumed run takes
        the same steps as one that was never interrupted.
    progress : bool
        Show a progress bar.
    run_dir : path, optional
        Write a :class:`~dlbio_teach.records.RunRecord` and the weights there when the
        training ends; the record holds this call's settings.
    record : dict, optional
        More for the run record: ``profile``, ``datasets``, ``splits``, ``metrics``,
        ``hyperparameters`` (added to this call's settings), ``synthetic_data``, ``notes``.

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x = np.random.rand(8, 16, 16).astype(np.float32)
    >>> h = fit(net, (x, x), (x, x), loss_fn=torch.nn.functional.mse_loss, epochs=2,
    ...         progress=False)
    >>> h.epochs_run, h.monitored
    (2, 'validation')
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    epoch_lr(0, lr=lr, epochs=epochs, schedule=lr_schedule)   # checks the schedule's name
    device = resolve_device(device)
    model.to(device, memory_format=_memory_format(model))
    train = as_tensors(*train_data)
    val = as_tensors(*val_data) if val_data is not None else None
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    history = History(monitored="validation" if val is not None else "training")
    best_state = None
    if checkpoint_dir and resume:
        restored, best_state = load_checkpoint(checkpoint_dir, model=model, optimizer=optimizer,
                                               scaler=scaler, device=device)
        history = restored or history
    step = dict(batch_size=batch_size, device=device, scaler=scaler, transform=transform)
    t0 = time.perf_counter() - history.seconds
    first = epochs if history.stopped_early else history.epochs_run
    bar = progress_bar(range(first, epochs), desc="training", unit="epoch",
                       disable=not progress, initial=first, total=epochs)
    for epoch in bar:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(epoch, lr=lr, epochs=epochs, schedule=lr_schedule)
        loss = _run_epoch(model, train, loss_fn, optimizer=optimizer, generator=generator,
                          augment=augment, **step)
        history.train_loss.append(loss)
        if val is not None:
            with torch.no_grad():
                loss = _run_epoch(model, val, loss_fn, optimizer=None, augment=False,
                                  generator=torch.Generator().manual_seed(seed), **step)
            history.val_loss.append(loss)
        if loss < history.best_loss:
            history.best_loss, history.best_epoch = loss, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if checkpoint_dir:
                save_weights(model, Path(checkpoint_dir) / "best.pt")
        history.stopped_early = patience is not None and epoch - history.best_epoch >= patience
        history.seconds = time.perf_counter() - t0
        if checkpoint_dir:
            save_checkpoint(checkpoint_dir, model=model, optimizer=optimizer, scaler=scaler,
                            history=history)
        bar.set_postfix(train=f"{history.train_loss[-1]:.4g}",
                        val=f"{history.val_loss[-1]:.4g}" if history.val_loss else "-")
        if history.stopped_early:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if run_dir is not None:
        settings = dict(loss=getattr(loss_fn, "__name__", type(loss_fn).__name__),
                        optimizer="Adam", lr=lr, weight_decay=weight_decay, epochs=epochs,
                        batch_size=batch_size, augment=augment, patience=patience)
        if lr_schedule != "constant":   # the records of constant-rate runs stay as they were
            settings["lr_schedule"] = lr_schedule
        _write_run_record(model, history, run_dir=run_dir, seed=seed, settings=settings,
                          record=record)
    return history
