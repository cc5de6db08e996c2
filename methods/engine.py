"""The one training loop every method uses: the comparison is only fair that way.

Data stays resident on the run's device as uint8 tensors; batches are gathered, augmented (random crop with
zero padding + horizontal flip, the same transform applied to any per-image spatial targets such as teacher maps)
and normalised on the device. Best-on-validation checkpointing keeps the weights of the epoch with the highest
validation accuracy.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from datasets.base import DataBundle, Split
from core.progress import progress as progress_bar
from core.torch_utils import eval_mode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the shared engine (``--set train.<key>=value``)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    augment: bool = True
    crop_padding: int = 4
    eval_batch_size: int = 1000
    max_steps_per_epoch: int = 0  # 0 = full epochs; >0 caps steps (tests, smoke runs)
    compile: bool = False  # run the loss through torch.compile (same results up to float rounding; not in cache keys)

    def key_dict(self) -> dict:
        """The fields that determine a trained model (what cache keys are made of): all but ``compile``."""
        out = asdict(self)
        out.pop("compile")
        return out

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"train.optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("train.epochs, train.batch_size and train.lr must be positive")


@dataclass
class Batch:
    """What a loss function sees: normalised images, labels, and per-image extras (augmented with the images)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


LossFn = Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]  # -> (loss, logits)


@dataclass
class FitResult:
    best_val_accuracy: float
    best_epoch: int
    history: list[dict[str, float]]
    wall_s: float
    images_per_s: float
    epochs: int = 0  # epochs trained (the budget; the kept weights are those of ``best_epoch``)
    images_seen: int = 0  # training images processed (with repeats): epochs x images per epoch
    warm_images_per_s: float = 0.0  # the same rate without the first epoch (compilation, warm-up) when epochs > 1

    def as_dict(self) -> dict:
        return asdict(self)


def validation_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random (train, validation) index split of ``n`` training images."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * fraction))
    return perm[n_val:], perm[:n_val]


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator,
                     extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Batched random crop (zero padding) and horizontal flip on the device.

    ``extras`` with the same spatial size as ``images`` (e.g. teacher maps) get the same geometric transform.
    """
    b, _, h, w = images.shape
    device = images.device
    shifts = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=device)
    flip = torch.rand(b, generator=generator, device=device) < 0.5
    rows = shifts[0][:, None] + torch.arange(h, device=device)  # [B, H] rows of the padded image
    cols = shifts[1][:, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)

    def transform(t: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(t, (padding,) * 4)
        bi = torch.arange(b, device=device)[:, None, None, None]
        ci = torch.arange(t.shape[1], device=device)[None, :, None, None]
        return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]

    out_extras = {k: (transform(v) if v.ndim == 4 and v.shape[-2:] == (h, w) else v)
                  for k, v in (extras or {}).items()}
    return transform(images), out_extras


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Engine:
    """Fits any module with any loss on a :class:`DataBundle`, with the same recipe for every method."""

    def __init__(self, cfg: TrainConfig, seed: int = 0, progress: bool = True, desc: str = "train") -> None:
        self.cfg = cfg
        self.seed = seed
        self.progress = progress
        self.desc = desc

    def replace(self, **changes) -> "Engine":
        import dataclasses

        return Engine(dataclasses.replace(self.cfg, **changes), self.seed, self.progress, self.desc)

    def fit(self, module: nn.Module, loss_fn: LossFn, data: DataBundle, *,
            params: list[nn.Parameter] | None = None, extras: dict[str, torch.Tensor] | None = None,
            predict: Callable[[torch.Tensor], torch.Tensor] | None = None,
            freeze_eval: list[nn.Module] = (), desc: str | None = None,
            on_epoch_end: Callable[[], dict[str, float]] | None = None) -> FitResult:
        """Train ``module`` by minimising ``loss_fn`` over ``data.train`` (minus a validation fraction).

        ``extras``: per-training-image tensors (indexed like ``data.train``) handed to the loss in ``Batch.extras``;
        spatial ones ([N, C, H, W] at image size) are augmented with the images. ``predict``: logits used for
        validation accuracy (default ``module``). ``params``: what the optimiser updates (default: all trainable).
        ``freeze_eval``: sub-modules kept in eval mode (frozen BatchNorm statistics). ``on_epoch_end``: called
        after each epoch's validation (module in eval mode); the numbers it returns join that epoch's record.
        """
        cfg = self.cfg
        torch.manual_seed(self.seed)
        device = data.device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        train_idx, val_idx = validation_split(len(data.train), cfg.val_fraction, self.seed)
        train_idx, val_idx = train_idx.to(device), val_idx.to(device)
        predict = predict or module
        params = [p for p in (params if params is not None else module.parameters()) if p.requires_grad]
        optimizer = make_optimizer(params, cfg)
        steps = math.ceil(len(train_idx) / cfg.batch_size)
        if cfg.max_steps_per_epoch:
            steps = min(steps, cfg.max_steps_per_epoch)
        best_acc, best_epoch, best_state = -1.0, -1, None
        history: list[dict[str, float]] = []
        seen, train_time, first_seen, first_time = 0, 0.0, 0, 0.0
        start = time.perf_counter()
        bar = _progress(cfg.epochs * steps, desc or self.desc, self.progress)
        step_loss = compiled_or_eager(loss_fn) if cfg.compile else loss_fn
        log.debug("%s: %d epoch(s) x %d step(s) of %d images, %d validation images", desc or self.desc, cfg.epochs,
                  steps, cfg.batch_size, len(val_idx))
        stats = tuple(torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (data.mean, data.std))
        for epoch in range(cfg.epochs):
            module.train()
            for sub in freeze_eval:
                sub.eval()
            order = train_idx[torch.randperm(len(train_idx), generator=generator, device=device)]
            loss_sum = torch.zeros((), device=device)
            t0 = time.perf_counter()
            for step in range(steps):
                index = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                batch = self._batch(data.train, index, extras, generator, stats)
                loss, _ = step_loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach()
                seen += len(index)
                bar.update(1)
            train_loss = float(loss_sum) / steps  # one sync per epoch, not per step
            if not math.isfinite(train_loss):
                bar.close()
                raise FloatingPointError(f"non-finite training loss ({train_loss}) in epoch {epoch}: "
                                         "lower train.lr or check the inputs")
            train_time += time.perf_counter() - t0
            if epoch == 0:
                first_seen, first_time = seen, train_time
            record = {"epoch": epoch, "train_loss": train_loss}
            if len(val_idx):
                record["val_accuracy"] = accuracy(predict, data, data.train.subset(val_idx), cfg.eval_batch_size)
                if record["val_accuracy"] > best_acc:
                    best_acc, best_epoch = record["val_accuracy"], epoch
                    best_state = copy.deepcopy(module.state_dict())
            if on_epoch_end is not None:
                with eval_mode(module):
                    record.update(on_epoch_end())
            history.append(record)
            bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
            log.debug("%s: epoch %d/%d %s", desc or self.desc, epoch + 1, cfg.epochs,
                      " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
        bar.close()
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        rate = seen / train_time if train_time else 0.0
        warm = (seen - first_seen) / (train_time - first_time) if cfg.epochs > 1 and train_time > first_time else rate
        return FitResult(best_acc, best_epoch, history, time.perf_counter() - start, rate, epochs=cfg.epochs,
                         images_seen=seen, warm_images_per_s=warm)

    def _batch(self, split: Split, index: torch.Tensor, extras: dict[str, torch.Tensor] | None,
               generator: torch.Generator, stats: tuple[torch.Tensor, torch.Tensor]) -> Batch:
        images = split.images[index]
        batch_extras = {k: v[index] for k, v in (extras or {}).items()}
        if self.cfg.augment:
            images, batch_extras = random_crop_flip(images, self.cfg.crop_padding, generator, batch_extras)
        mean, std = stats
        return Batch((images.float().div_(255.0) - mean) / std, split.labels[index], index, batch_extras)


def compiled_or_eager(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` through ``torch.compile``; if compiling fails (no C++ compiler, an op dynamo cannot trace), a
    warning and the eager function from then on, so a run never fails for want of a compiler."""
    import logging

    compiled = torch.compile(loss_fn)
    state = {"fn": compiled}

    def run(batch: Batch):
        try:
            return state["fn"](batch)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back to eager
            if state["fn"] is loss_fn:
                raise
            logging.getLogger(__name__).warning("torch.compile failed (%s: %s); training eagerly",
                                                type(err).__name__, str(err).splitlines()[0][:200])
            state["fn"] = loss_fn
            return loss_fn(batch)

    return run


@torch.no_grad()
def predict_logits(predict: Callable[[torch.Tensor], torch.Tensor], data: DataBundle, split: Split,
                   batch_size: int = 1000) -> torch.Tensor:
    """Logits [N, K] of ``predict`` over a split, normalised on the fly, with its module in eval mode."""
    owner = predict if isinstance(predict, nn.Module) else getattr(predict, "__self__", None)
    with eval_mode(*([owner] if isinstance(owner, nn.Module) else [])):
        return torch.cat([predict(data.normalize(split.images[i:i + batch_size]))
                          for i in range(0, len(split), batch_size)])




def accuracy(predict: Callable[[torch.Tensor], torch.Tensor], data: DataBundle, split: Split,
             batch_size: int = 1000) -> float:
    logits = predict_logits(predict, data, split, batch_size)
    return float((logits.argmax(1) == split.labels).float().mean())


def _progress(total: int, desc: str, enabled: bool):
    return progress_bar(total, desc, enabled, unit="step")
