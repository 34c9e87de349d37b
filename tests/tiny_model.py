"""Helpers shared by the model and callback tests: tiny synthetic videos with one MaE (and every
other video one ME) and point labels, a tiny PWESModule, and a quiet CPU Trainer."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from pwes.data.batch import Batch, VideoItem, collate
from pwes.model import PWESModule

DIM = 12
REGIONS = {"background": 3, "me": 1, "mae": 2}
# topk=divisors (k = T // divisor): these modules predict without being fitted, and topk=points
# (the default) takes its inference k from a rate estimated when fitting starts (tests/test_topk.py)
TINY = {"stream_dim": 16, "fused_dim": 16, "attention_dim": 8, "dropout": 0.0, "topk_divisors": [8, 4, 4], "topk": "divisors"}
ADAM = {"_target_": "torch.optim.Adam", "lr": 3e-3}
QUIET = "ignore:.*(does not have many workers|LeafSpec|litlogger|dataloader is not resumable).*"


def synthetic_videos(n: int, seed: int) -> tuple[list[VideoItem], list[torch.Tensor]]:
    """Videos of 24-39 snippets: noise, one MaE (4-6 snippets, +1.5 on dims 0-3 of both streams)
    and, in every other video, one ME (2 snippets, on dims 4-7, mostly in flow); one point label
    per expression. Also returns each video's ground truth [T] (0 ME, 1 MaE, 2 background)."""
    g = torch.Generator().manual_seed(seed)
    items, truth = [], []
    for i in range(n):
        T = int(torch.randint(24, 40, (1,), generator=g))
        rgb, flow = 0.3 * torch.randn(T, DIM, generator=g), 0.3 * torch.randn(T, DIM, generator=g)
        points, label, gt = torch.zeros(T, 2), torch.zeros(2), torch.full((T,), 2)
        start, length = int(torch.randint(2, T - 8, (1,), generator=g)), int(torch.randint(4, 7, (1,), generator=g))
        rgb[start : start + length, :4] += 1.5
        flow[start : start + length, :4] += 1.5
        points[start + int(torch.randint(0, length, (1,), generator=g)), 1] = 1.0
        label[1], gt[start : start + length] = 1.0, 1
        if i % 2 == 0:
            me = (start + length + 3) % (T - 2)
            flow[me : me + 2, 4:8] += 1.5
            rgb[me : me + 2, 4:8] += 0.5
            points[me, 0], label[0], gt[me : me + 2] = 1.0, 1.0, 0
        intervals = torch.stack([(gt == 0).float(), (gt == 1).float()], dim=-1)
        items.append(VideoItem(f"v{i}", f"s{i % 3}", rgb, flow, label, points, intervals=intervals))
        truth.append(gt)
    return items, truth


def batches(items: list[VideoItem], size: int = 4) -> list[Batch]:
    return [collate(items[i : i + size]) for i in range(0, len(items), size)]


def keep(batch: Batch) -> Batch:
    return batch


def loader(data: list[Batch]) -> DataLoader:
    return DataLoader(data, batch_size=None, collate_fn=keep)


def make_module(**kwargs) -> PWESModule:
    settings = dict(network=TINY, optimizer_config=ADAM)
    settings.update(kwargs)
    return PWESModule(DIM, DIM, **settings)


def make_trainer(max_steps: int, callbacks: list[Callback], **kwargs) -> L.Trainer:
    settings = dict(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=callbacks,
    )
    settings.update(kwargs)
    return L.Trainer(**settings)


class Recorder(Callback):
    """Records, per training batch, the step, the loss and the logged metrics."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(trainer.global_step - 1)
        self.losses.append(float(outputs["loss"]))
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})
