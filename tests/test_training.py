"""dlbio_teach.training: the loop, early stopping, checkpoints and resume, tensors."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dlbio_teach.models import UNet
from dlbio_teach.records import RunRecord, load_weights, save_weights
from dlbio_teach.training import History, as_tensors, epoch_lr, fit, progress_bar, train_step


def scaling_problem(n=32, size=12, gain=2.0, seed=0):
    """Inputs and targets of a problem a 1x1 convolution solves exactly: y = gain * x."""
    x = np.random.default_rng(seed).random((n, size, size)).astype(np.float32)
    return x, (gain * x).astype(np.float32)


def conv1x1(weight=0.1, bias=0.0):
    net = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(weight)
        net.bias.fill_(bias)
    return net


def small_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(1, 1, depth=1, base_channels=4)


def states_equal(a: dict, b: dict, atol=0.0) -> bool:
    assert a.keys() == b.keys()
    if atol == 0:
        return all(torch.equal(a[k], b[k]) for k in a)
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol) for k in a)


# --- as_tensors -------------------------------------------------------------------------

def test_as_tensors_shapes_and_dtypes():
    x, y, c, k, m = as_tensors(np.zeros((3, 8, 9), np.float64), np.ones((3, 8, 9), np.uint8),
                               np.array([0, 1, 1]), np.zeros((3, 2, 8, 9), np.float32),
                               np.zeros((3, 8, 9), bool))
    assert x.shape == (3, 1, 8, 9) and x.dtype == torch.float32
    assert y.shape == (3, 8, 9) and y.dtype == torch.int64 and int(y.sum()) == 3 * 72
    assert c.shape == (3,) and c.dtype == torch.int64 and c.tolist() == [0, 1, 1]
    assert k.shape == (3, 2, 8, 9) and k.dtype == torch.float32
    assert m.dtype == torch.int64


def test_as_tensors_keeps_values_and_tensors():
    a = np.random.default_rng(0).random((2, 4, 4))
    t = torch.ones(2, 5)
    x, same = as_tensors(a, t)
    assert np.allclose(x[:, 0].numpy(), a) and same is t


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_as_tensors_rejects_nan(bad):
    a = np.zeros((2, 4, 4), np.float32)
    a[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        as_tensors(a)


def test_as_tensors_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same number of samples, got \[3, 4\]"):
        as_tensors(np.zeros((3, 4, 4), np.float32), np.zeros((4, 4, 4), np.float32))


def test_as_tensors_rejects_other_dtypes():
    with pytest.raises(ValueError, match="cannot train on dtype"):
        as_tensors(np.zeros((2, 4, 4), np.complex64))


# --- History and progress bar -------------------------------------------------------------

def test_history():
    h = History(train_loss=[1.0, 0.5, 0.25], val_loss=[1.0, 0.6, 0.7], best_epoch=1)
    assert h.epochs_run == 3
    d = h.to_dict()
    assert d["train_loss"] == [1.0, 0.5, 0.25] and d["best_epoch"] == 1
    assert History(**d) == h
    assert History().epochs_run == 0 and History().best_loss == float("inf")


def test_progress_bar_is_plain_text_without_widgets(monkeypatch):
    from tqdm.std import tqdm as std_tqdm

    monkeypatch.setenv("DLBIO_WIDGETS", "0")
    out = io.StringIO()
    bar = progress_bar(range(3), file=out, desc="steps")
    assert type(bar) is std_tqdm
    assert bar.mininterval == 5.0
    assert list(bar) == [0, 1, 2]
    bar.close()
    assert "steps" in out.getvalue() and "3/3" in out.getvalue()
    assert progress_bar(range(2), file=out, mininterval=0.5).mininterval == 0.5


# --- fit ------------------------------------------------------------------------------------

def test_fit_reduces_the_loss():
    x, y = scaling_problem()
    net = conv1x1()
    history = fit(net, (x, y), loss_fn=F.mse_loss, epochs=20, batch_size=8, lr=0.1,
                  progress=False)
    assert history.epochs_run == 20
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.train_loss[-1] < 0.01
    assert abs(float(net.weight.detach()) - 2.0) < 0.1
    assert history.val_loss == []            # no validation set
    assert history.best_loss == min(history.train_loss)
    assert history.monitored == "training"   # named for what it holds
    assert not net.training                   # returned in eval mode


def test_fit_with_validation_records_both_losses():
    x, y = scaling_problem(seed=0)
    vx, vy = scaling_problem(n=8, seed=1)
    history = fit(conv1x1(), (x, y), (vx, vy), loss_fn=F.mse_loss, epochs=6, batch_size=8,
                  lr=0.05, progress=False)
    assert len(history.train_loss) == len(history.val_loss) == 6
    assert history.val_loss[-1] < 0.5 * history.val_loss[0]
    assert history.best_loss == min(history.val_loss) and history.monitored == "validation"
    assert history.val_loss[history.best_epoch] == history.best_loss
    assert history.seconds > 0 and not history.stopped_early


def test_fit_unet_learns():
    x, y = scaling_problem(n=16, size=16, gain=0.5)
    net = small_unet()
    history = fit(net, (x, y), loss_fn=F.mse_loss, epochs=10, batch_size=8, lr=1e-2,
                  progress=False)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_fit_rejects_zero_epochs():
    x, y = scaling_problem(n=4)
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        fit(conv1x1(), (x, y), loss_fn=F.mse_loss, epochs=0, progress=False)


def test_fit_checks_the_data():
    x, y = scaling_problem(n=4)
    x[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(conv1x1(), (x, y), loss_fn=F.mse_loss, epochs=1, progress=False)


def test_early_stopping_stops():
    x, y = scaling_problem(n=16)
    net = conv1x1()
    before = net.weight.detach().clone()
    history = fit(net, (x, y), (x, y), loss_fn=F.mse_loss, epochs=20, batch_size=8, lr=0.0,
                  patience=2, progress=False)
    # lr=0: the validation loss never improves after the first epoch.
    assert history.stopped_early
    assert history.best_epoch == 0
    assert history.epochs_run == 3
    assert len(history.val_loss) == 3 and len(set(history.val_loss)) == 1
    assert torch.equal(net.weight, before)


def test_no_early_stopping_without_patience():
    x, y = scaling_problem(n=8)
    history = fit(conv1x1(), (x, y), (x, y), loss_fn=F.mse_loss, epochs=5, lr=0.0,
                  progress=False)
    assert history.epochs_run == 5 and not history.stopped_early


def test_fit_returns_the_best_weights(tmp_path):
    """Validation against the opposite target: it is best before training moves the weight."""
    x, y = scaling_problem(n=16)
    net = conv1x1(weight=0.1)
    history = fit(net, (x, y), (x, -y), loss_fn=F.mse_loss, epochs=5, batch_size=8, lr=0.05,
                  checkpoint_dir=tmp_path, progress=False)
    assert history.best_epoch == 0
    assert history.val_loss[-1] > history.val_loss[0]
    last = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert states_equal(net.state_dict(), best)
    assert not torch.equal(last["weight"], best["weight"])
    assert float(last["weight"]) > float(best["weight"])


def test_fit_seeded_runs_are_reproducible():
    x, y = scaling_problem(n=24, size=16)
    runs = []
    for seed in (3, 3, 4):
        net = small_unet(seed=0)
        h = fit(net, (x, y), (x[:8], y[:8]), loss_fn=F.mse_loss, epochs=3, batch_size=8,
                augment=True, seed=seed, progress=False)
        runs.append((net.state_dict(), h))
    assert states_equal(runs[0][0], runs[1][0])
    assert runs[0][1].train_loss == runs[1][1].train_loss
    assert runs[0][1].val_loss == runs[1][1].val_loss
    assert not states_equal(runs[0][0], runs[2][0])   # another seed, another batch order


def test_fit_transform_gets_a_generator():
    x, y = scaling_problem(n=8)
    calls = []

    def transform(batch, generator):
        assert isinstance(generator, torch.Generator)
        calls.append(len(batch))
        return [batch[0] * 0.5, batch[1]]

    net = conv1x1()
    fit(net, (x, y), (x, y), loss_fn=F.mse_loss, epochs=20, batch_size=4, lr=0.2,
        transform=transform, progress=False)
    assert len(calls) == 20 * (2 + 2)        # 2 training + 2 validation batches per epoch
    # It learnt through the transform: towards y = 4 * (x / 2), beyond the plain optimum 2.
    assert float(net.weight.detach()) > 2.5


def test_fit_shuffles_differently_each_epoch():
    x = np.stack([np.full((4, 4), i, np.float32) for i in range(16)])   # sample i is all i
    orders = []

    def transform(batch, generator):
        if len(orders) < 100:
            orders.append(tuple(batch[0][:, 0, 0, 0].int().tolist()))
        return batch

    fit(conv1x1(), (x, x), loss_fn=F.mse_loss, epochs=4, batch_size=16, lr=0.0,
        transform=transform, progress=False)
    assert len(orders) == 4
    assert all(sorted(o) == list(range(16)) for o in orders)   # each sample once per epoch
    assert len(set(orders)) == 4                                 # a new order each epoch


def test_fit_skips_batches_of_one():
    x, y = scaling_problem(n=9)
    seen = []

    def transform(batch, generator):
        seen.append(len(batch[0]))
        return batch

    fit(conv1x1(), (x, y), loss_fn=F.mse_loss, epochs=1, batch_size=4, transform=transform,
        progress=False)
    assert seen == [4, 4]                    # the last batch of one is skipped


# --- checkpoints --------------------------------------------------------------------------

def resume_problem():
    x, y = scaling_problem(n=24, size=16, gain=0.5, seed=0)
    vx, vy = scaling_problem(n=8, size=16, gain=0.5, seed=1)
    return (x, y), (vx, vy)


def test_checkpoint_resume_equals_uninterrupted_training(tmp_path):
    train, val = resume_problem()
    kwargs = dict(loss_fn=F.mse_loss, batch_size=8, lr=1e-2, augment=True, seed=5,
                  progress=False)

    straight = small_unet(seed=0)
    h_straight = fit(straight, train, val, epochs=4, checkpoint_dir=tmp_path / "a", **kwargs)

    first = small_unet(seed=0)
    h_first = fit(first, train, val, epochs=2, checkpoint_dir=tmp_path / "b", **kwargs)
    assert h_first.epochs_run == 2
    resumed = small_unet(seed=99)            # other initial weights: resume must replace them
    h_resumed = fit(resumed, train, val, epochs=4, checkpoint_dir=tmp_path / "b",
                    resume=True, **kwargs)

    assert h_resumed.epochs_run == h_straight.epochs_run == 4
    assert len(h_resumed.val_loss) == len(h_straight.val_loss) == 4
    assert np.allclose(h_resumed.train_loss, h_straight.train_loss, rtol=1e-6, atol=0)
    assert np.allclose(h_resumed.val_loss, h_straight.val_loss, rtol=1e-6, atol=0)
    assert h_resumed.best_epoch == h_straight.best_epoch
    assert states_equal(resumed.state_dict(), straight.state_dict(), atol=1e-6)
    last_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    last_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert states_equal(last_a["model"], last_b["model"], atol=1e-6)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    train, val = resume_problem()
    h = fit(small_unet(), train, val, loss_fn=F.mse_loss, epochs=2, batch_size=8,
            checkpoint_dir=tmp_path / "empty", resume=True, progress=False)
    assert h.epochs_run == 2
    assert (tmp_path / "empty" / "last.pt").exists()


def test_resume_after_early_stop_trains_no_more(tmp_path):
    x, y = scaling_problem(n=16)
    fit(conv1x1(), (x, y), (x, y), loss_fn=F.mse_loss, epochs=20, lr=0.0, patience=1,
        checkpoint_dir=tmp_path, progress=False)
    net = conv1x1(weight=0.7)
    h = fit(net, (x, y), (x, y), loss_fn=F.mse_loss, epochs=20, lr=0.0, patience=1,
            checkpoint_dir=tmp_path, resume=True, progress=False)
    assert h.stopped_early and h.epochs_run == 2
    assert float(net.weight.detach()) == pytest.approx(0.1)   # the checkpoint's (best) weights


def test_checkpoint_files(tmp_path):
    train, val = resume_problem()
    net = small_unet()
    fit(net, train, val, loss_fn=F.mse_loss, epochs=2, batch_size=8, checkpoint_dir=tmp_path,
        progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(last) == {"model", "optimizer", "scaler", "history"}
    assert len(last["history"]["train_loss"]) == 2


def test_best_checkpoint_loads_with_load_weights(tmp_path):
    train, val = resume_problem()
    net = small_unet(seed=0)
    fit(net, train, val, loss_fn=F.mse_loss, epochs=3, batch_size=8, lr=1e-2,
        checkpoint_dir=tmp_path, progress=False)
    fresh = small_unet(seed=42)
    assert not states_equal(fresh.state_dict(), net.state_dict())
    out = load_weights(fresh, tmp_path / "best.pt")
    assert out is fresh
    assert states_equal(fresh.state_dict(), net.state_dict())


def test_save_and_load_weights(tmp_path):
    net = small_unet(seed=1)
    path = save_weights(net, tmp_path / "sub" / "w.pt")
    assert path == tmp_path / "sub" / "w.pt" and path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.pt"]   # no temporary file
    other = load_weights(small_unet(seed=2), path, device="cpu")
    assert states_equal(other.state_dict(), net.state_dict())


def test_load_weights_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1, 1, 1, 1), "bias": torch.zeros(1),
                "payload": History()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        load_weights(conv1x1(), path)


def test_checkpoint_keeps_the_gradient_scaler(tmp_path):
    """The CUDA GradScaler's state (scale, growth tracker) is saved and restored."""
    from dlbio_teach.training import load_checkpoint, save_checkpoint
    net = conv1x1()
    optimizer = torch.optim.Adam(net.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=True)
    save_checkpoint(tmp_path, model=net, optimizer=optimizer, scaler=scaler,
                    history=History(train_loss=[1.0]))
    other = torch.amp.GradScaler("cpu", init_scale=8.0, enabled=True)
    history, best = load_checkpoint(tmp_path, model=conv1x1(weight=0.3),
                                    optimizer=torch.optim.Adam(conv1x1().parameters()),
                                    scaler=other, device="cpu")
    assert history.train_loss == [1.0] and best is None
    assert other.state_dict()["scale"] == 1024.0


def test_train_step_learns_and_validation_step_does_not():
    x, y = scaling_problem(n=8)
    x, y = torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None]
    net = conv1x1()
    before = net.weight.detach().clone()
    train_step(net, [x, y], F.mse_loss)                  # no optimizer: no change
    assert torch.equal(net.weight.detach(), before)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    first = float(train_step(net, [x, y], F.mse_loss, optimizer=optimizer))
    for _ in range(20):
        last = float(train_step(net, [x, y], F.mse_loss, optimizer=optimizer))
    assert last < 0.5 * first


def test_fit_writes_a_run_record(tmp_path):
    x, y = scaling_problem(n=16)
    net = small_unet()
    history = fit(net, (x, y), (x, y), loss_fn=F.mse_loss, epochs=2, batch_size=8, lr=1e-2,
                  seed=3, progress=False, run_dir=tmp_path / "run",
                  record={"profile": "smoke", "datasets": ["blobs"], "splits": {"train": [0]},
                          "hyperparameters": {"note": "test"}})
    record = RunRecord.load(tmp_path / "run")
    assert record.seed == 3 and record.profile["name"] == "smoke"
    assert record.hyperparameters["lr"] == 1e-2 and record.hyperparameters["epochs"] == 2
    assert record.hyperparameters["loss"] == "mse_loss"
    assert record.hyperparameters["note"] == "test"
    assert record.history["train_loss"] == pytest.approx(history.train_loss)
    assert record.splits == {"train": [0]} and "blobs" in record.datasets
    assert (tmp_path / "run" / "weights.pt").exists()


def test_fit_trains_a_network_of_volumes():
    """A 3D U-Net and batches of volumes (N, 1, Z, Y, X), augmented in the YX plane."""
    torch.manual_seed(0)
    net = UNet(1, 1, depth=1, base_channels=4, ndim=3)
    x = np.random.default_rng(0).random((8, 1, 4, 8, 8)).astype(np.float32)
    h = fit(net, (x, 2 * x), (x, 2 * x), loss_fn=F.mse_loss, epochs=4, batch_size=4,
            lr=1e-2, augment=True, progress=False)
    assert h.epochs_run == 4 and h.train_loss[-1] < h.train_loss[0]
    assert net(torch.from_numpy(x[:1])).shape == (1, 1, 4, 8, 8)


def test_cosine_schedule_lowers_the_learning_rate_each_epoch(monkeypatch):
    seen = []

    class RecordingAdam(torch.optim.Adam):
        def step(self, *args, **kwargs):
            seen.append(self.param_groups[0]["lr"])
            return super().step(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    train, val = resume_problem()
    fit(small_unet(seed=0), train, val, loss_fn=F.mse_loss, epochs=4, batch_size=len(train[0]),
        lr=0.1, lr_schedule="cosine", progress=False)
    assert seen == pytest.approx([epoch_lr(e, lr=0.1, epochs=4, schedule="cosine")
                                  for e in range(4)])
    assert seen[0] == pytest.approx(0.1) and seen[-1] < 0.02


def test_cosine_schedule_resumes_where_it_was_interrupted(tmp_path):
    train, val = resume_problem()
    kwargs = dict(loss_fn=F.mse_loss, batch_size=8, lr=1e-2, lr_schedule="cosine", seed=5,
                  epochs=4, progress=False)
    straight = small_unet(seed=0)
    fit(straight, train, val, **kwargs)

    calls = []

    def interrupt_in_epoch_three(batch, generator):
        calls.append(1)
        if torch.is_grad_enabled() and len(calls) > 2 * (len(train[0]) // 8 + 1) + 2:
            raise KeyboardInterrupt   # a Colab disconnect, after two whole epochs
        return batch

    interrupted = small_unet(seed=0)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, train, val, checkpoint_dir=tmp_path, transform=interrupt_in_epoch_three,
            **kwargs)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert len(saved["history"]["train_loss"]) == 2, "the interruption came too early"
    resumed = small_unet(seed=99)
    history = fit(resumed, train, val, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert history.epochs_run == 4
    assert states_equal(resumed.state_dict(), straight.state_dict(), atol=1e-6)


def test_fit_rejects_an_unknown_schedule():
    train, _ = resume_problem()
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        fit(small_unet(seed=0), train, loss_fn=F.mse_loss, epochs=1, lr_schedule="step",
            progress=False)
