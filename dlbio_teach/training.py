"""One training loop for every chapter: progress, history, early stopping, checkpoints.

The loop is written by hand because it is part of what the course teaches: sample a
batch, predict, compute the loss, back-propagate, step. Everything else (checkpoints so a
disconnected Colab session can resume, early stopping on the validation loss, mixed
precision on CUDA) is what a real project needs around those five lines.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["History", "fit", "as_tensors", "load_weights", "save_weights", "progress_bar"]


def progress_bar(iterable=None, **kwargs):
    """``tqdm.auto`` progress bar; plain text when ``DLBIO_WIDGETS=0`` (static outputs)."""
    if os.environ.get("DLBIO_WIDGETS", "").strip() == "0":
        from tqdm.std import tqdm
        kwargs.setdefault("mininterval", 5.0)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


@dataclass
class History:
    """Losses per epoch, and what early stopping decided."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("inf")
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict:
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
    """Same random flip and 90-degree rotation for every tensor of a batch."""
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


def save_weights(model: torch.nn.Module, path) -> Path:
    """Save a model's state dict (tensors only: safe to share and to load)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)   # never leave a half-written checkpoint
    return path


def load_weights(model: torch.nn.Module, path, *, device=None) -> torch.nn.Module:
    """Load a state dict saved by :func:`save_weights` with ``weights_only=True``.

    Nothing is unpickled: a weights file from elsewhere cannot run code.
    """
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def _to_device(tensor, device):
    # Images go channels-last: convolutions run faster in that layout (oneDNN on CPUs,
    # tensor cores on GPUs); the values are the same.
    if tensor.ndim == 4 and tensor.is_floating_point():
        return tensor.to(device, memory_format=torch.channels_last, non_blocking=True)
    return tensor.to(device, non_blocking=True)


def _run_epoch(model, tensors, loss_fn, *, batch_size, device, optimizer, scaler,
               generator, augment, transform):
    training = optimizer is not None
    model.train(training)
    n = len(tensors[0])
    order = torch.randperm(n, generator=generator) if training else torch.arange(n)
    total, count = 0.0, 0
    use_amp = device.type == "cuda"
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
        with torch.set_grad_enabled(training), \
                torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            output = model(batch[0])
            loss = loss_fn(output.float(), *batch[1:])
        if training:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def fit(model: torch.nn.Module, train_data, val_data=None, *, loss_fn, epochs: int,
        batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.0,
        device=None, patience: int | None = None, augment: bool = False,
        transform=None, checkpoint_dir=None, resume: bool = False, seed: int = 0,
        progress: bool = True) -> History:
    """Train ``model`` and return its :class:`History`; the model ends with its best weights.

    Parameters
    ----------
    model : torch.nn.Module
        The network; it is moved to ``device``.
    train_data, val_data : tuple of arrays
        ``(inputs, targets, ...)`` stacks with the same first axis (see :func:`as_tensors`);
        the model sees ``inputs``, and ``loss_fn(output, targets, ...)`` gets the rest.
    loss_fn : callable
        ``loss_fn(output, *targets) -> scalar tensor``.
    epochs : int
        Maximum passes over ``train_data``.
    batch_size, lr, weight_decay : training hyper-parameters (Adam optimiser).
    device : torch.device, optional
        Default: CPU.
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

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x = np.random.rand(8, 16, 16).astype(np.float32)
    >>> h = fit(net, (x, x), (x, x), loss_fn=torch.nn.functional.mse_loss, epochs=2,
    ...         progress=False)
    >>> h.epochs_run
    2
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    device = torch.device(device or "cpu")
    model.to(device, memory_format=torch.channels_last)
    train = as_tensors(*train_data)
    val = as_tensors(*val_data) if val_data is not None else None
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    history = History()
    best_state = None
    start_epoch = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    if ckpt is not None and resume and (ckpt / "last.pt").exists():
        state = torch.load(ckpt / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        start_epoch = history.epochs_run
        if (ckpt / "best.pt").exists():
            best_state = torch.load(ckpt / "best.pt", map_location="cpu", weights_only=True)
        if history.stopped_early:
            start_epoch = epochs
    t0 = time.perf_counter() - history.seconds
    bar = progress_bar(range(start_epoch, epochs), desc="training", unit="epoch",
                       disable=not progress, initial=start_epoch, total=epochs)
    for epoch in bar:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        train_loss = _run_epoch(model, train, loss_fn, batch_size=batch_size, device=device,
                                optimizer=optimizer, scaler=scaler, generator=generator,
                                augment=augment, transform=transform)
        history.train_loss.append(train_loss)
        monitored = train_loss
        if val is not None:
            with torch.no_grad():
                monitored = _run_epoch(model, val, loss_fn, batch_size=batch_size,
                                       device=device, optimizer=None, scaler=None,
                                       generator=torch.Generator().manual_seed(seed),
                                       augment=False, transform=transform)
            history.val_loss.append(monitored)
        if monitored < history.best_val_loss:
            history.best_val_loss, history.best_epoch = monitored, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if ckpt is not None:
                save_weights(model, ckpt / "best.pt")
        if patience is not None and epoch - history.best_epoch >= patience:
            history.stopped_early = True
        history.seconds = time.perf_counter() - t0
        if ckpt is not None:
            ckpt.mkdir(parents=True, exist_ok=True)
            tmp = ckpt / "last.pt.tmp"
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "history": history.to_dict()}, tmp)
            os.replace(tmp, ckpt / "last.pt")
        bar.set_postfix(train=f"{train_loss:.4g}",
                        val=f"{history.val_loss[-1]:.4g}" if history.val_loss else "-")
        if history.stopped_early:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
