"""PWESModule end to end with a real Lightning Trainer on CPU: the config builds it, losses ignore
padding, the pretraining switch (also across a restart), a short run lowers the loss, the same
seed repeats it exactly, checkpoints restore the memory bank, prediction is trimmed."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from pwes.config import ConfigError
from pwes.data.batch import Batch, VideoItem, collate
from pwes.model import PretrainingSwitch, PWESModule, VideoPrediction

CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"
DIM = 12
REGIONS = {"background": 3, "me": 1, "mae": 2}
TINY = {"stream_dim": 16, "fused_dim": 16, "attention_dim": 8, "dropout": 0.0, "topk_divisors": [8, 4, 4]}
ADAM = {"_target_": "torch.optim.Adam", "lr": 3e-3}

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(does not have many workers|LeafSpec|litlogger|dataloader is not resumable).*"
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors run fastest (and steadiest on a busy machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
        items.append(VideoItem(f"v{i}", f"s{i % 3}", rgb, flow, label, points))
        truth.append(gt)
    return items, truth


def batches(items: list[VideoItem], size: int = 4) -> list[Batch]:
    return [collate(items[i : i + size]) for i in range(0, len(items), size)]


def keep(batch: Batch) -> Batch:
    return batch


def loader(data: list[Batch]) -> DataLoader:
    return DataLoader(data, batch_size=None, collate_fn=keep)


def make_module(pretrain_steps: int = 4, **kwargs) -> PWESModule:
    settings = dict(
        region_counts=REGIONS,
        pretrain_steps=pretrain_steps,
        network=TINY,
        dfcl={"bank_videos": 8},
        optimizer_config=ADAM,
    )
    settings.update(kwargs)
    return PWESModule(DIM, DIM, **settings)


def make_trainer(max_steps: int, callbacks: list[Callback], **kwargs) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=callbacks,
        **kwargs,
    )


class Recorder(Callback):
    """Records, per training batch, the step, the module's switch and the logged metrics."""

    def __init__(self) -> None:
        self.switch: list[tuple[int, bool]] = []
        self.losses: list[float] = []
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.switch.append((trainer.global_step, pl_module.pseudo_labels_enabled))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


# ------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("recursive", [True, False])
def test_the_model_config_builds_the_module(recursive: bool) -> None:
    with initialize_config_dir(config_dir=str(CONF_MODEL), version_base="1.3"):
        cfg = compose("pwes", overrides=["mplg=caf2", "dfcl=off", "network.stream_dim=32", "network.fused_dim=32"])
    cfg.optimizer.lr = 0.001  # the training loop's ${dataset.lr}
    # recursive: the optimizer node arrives as a functools.partial; otherwise as its config
    module = instantiate(cfg, rgb_dim=DIM, flow_dim=DIM, region_counts={"background": 8, "me": 2, "mae": 3},
                         pretrain_steps=50, _recursive_=recursive)
    assert isinstance(module, PWESModule)
    assert module.mplg_config.name == "caf2" and module.mplg_config.class_similarity
    assert not module.mplg_config.foreground_similarity
    assert module.memory_bank is None and module.pretrain_steps == 50
    assert module.network.feature_dim == 32
    target = "torch.optim.adam.Adam" if recursive else "torch.optim.Adam"
    assert module.hparams.optimizer_config == {"_target_": target, "lr": 0.001}
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.001


def test_default_config_has_the_paper_settings() -> None:
    with initialize_config_dir(config_dir=str(CONF_MODEL), version_base="1.3"):
        cfg = compose("pwes")
    assert cfg.supervision == "point" and cfg.pseudo == "mplg" and cfg.dfcl.enabled
    assert cfg.mplg.threshold == 0.8 and cfg.mplg.top_ratio == 0.3 and cfg.dfcl.temperature == 1.0
    assert cfg.optimizer._partial_ and cfg.optimizer._target_ == "torch.optim.Adam"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"supervision": "frame"}, "model.supervision"),
        ({"pseudo": "sfnet"}, "model.pseudo"),
        ({"mplg": {"threshold": 2.0}}, "model.mplg.threshold"),
        ({"region_counts": {"background": 0, "me": 2, "mae": 3}}, "dataset.regions.background"),
        ({"pretrain_steps": -1}, "dataset.pretrain_steps"),
        ({"optimizer": 0.001}, "model.optimizer"),
    ],
)
def test_bad_settings_fail_with_the_setting_named(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_module(**kwargs)
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------------- losses
def test_losses_of_a_video_do_not_change_when_it_is_padded_with_garbage() -> None:
    torch.manual_seed(0)
    items, _ = synthetic_videos(2, seed=1)
    module = make_module()
    module.memory_bank.enqueue(torch.randn(12, 16), torch.tensor([0, 1, 2] * 4))  # contrastive > 0
    alone = collate([items[0]])
    T = alone.rgb.shape[1]
    longer = VideoItem("long", "s", torch.randn(T + 9, DIM), torch.randn(T + 9, DIM), torch.ones(2), torch.zeros(T + 9, 2))
    padded = collate([items[0], longer])
    padded.rgb[0, T:] = 1e3 * torch.randn(9, DIM)  # garbage where the first video is padded
    padded.flow[0, T:] = -1e3
    padded.points[0, T:] = 1.0
    first_only = Batch(
        rgb=padded.rgb[:1], flow=padded.flow[:1], mask=padded.mask[:1], lengths=padded.lengths[:1],
        video_labels=padded.video_labels[:1], points=padded.points[:1], videos=["v0"],
    )
    reports = []
    for batch in (alone, first_only):
        output = module.network(batch.rgb, batch.flow, batch.mask)
        reports.append(module.compute_losses(batch, output, pseudo_active=True, update_memory=False))
    assert set(reports[0].terms) == {"mil", "mil_suppressed", "snippet", "contrastive", "guide", "sparsity", "mutual"}
    assert reports[0].terms["contrastive"].item() > 0.0
    for name, value in reports[0].terms.items():
        assert value.item() == pytest.approx(reports[1].terms[name].item(), abs=1e-5), name
    assert torch.equal(reports[0].labels[0], reports[1].labels[0, :T])
    assert not bool(reports[1].labels[0, T:].any())


def test_video_supervision_is_the_baseline_without_point_terms() -> None:
    module = make_module(supervision="video")
    assert module.memory_bank is None and not module.uses_pseudo_labels
    batch = batches(synthetic_videos(4, seed=2)[0])[0]
    output = module.network(batch.rgb, batch.flow, batch.mask)
    report = module.compute_losses(batch, output, pseudo_active=True)
    assert set(report.terms) == {"mil", "mil_suppressed", "guide", "sparsity", "mutual"}
    batch.points.zero_()  # the points are not used at all
    again = module.compute_losses(batch, output, pseudo_active=True)
    assert again.total.item() == pytest.approx(report.total.item())


def test_pseudo_sources() -> None:
    batch = batches(synthetic_videos(4, seed=3)[0])[0]
    for source in ("none", "pplm", "mplg"):
        torch.manual_seed(0)
        module = make_module(pseudo=source)
        output = module.network(batch.rgb, batch.flow, batch.mask)
        report = module.compute_losses(batch, output, pseudo_active=True)
        assert (report.pseudo is None) == (source == "none")
        if source == "none":  # only the point labels remain
            assert int(report.labels.sum()) == int((batch.points > 0).sum())
        assert torch.isfinite(report.total)


def test_folds_side_by_side_do_not_interfere() -> None:
    data = batches(synthetic_videos(8, seed=4)[0])

    def train(modules: list[PWESModule], steps: int) -> list[list[float]]:
        optimizers = [torch.optim.Adam(m.parameters(), 1e-3) for m in modules]
        losses: list[list[float]] = [[] for _ in modules]
        for step in range(steps):
            for k, (m, opt) in enumerate(zip(modules, optimizers)):
                m.set_pseudo_labels_enabled(step >= 2)
                batch = data[step % len(data)]
                report = m.compute_losses(batch, m.network(batch.rgb, batch.flow, batch.mask), step >= 2, True)
                opt.zero_grad()
                report.total.backward()
                opt.step()
                losses[k].append(report.total.item())
        return losses

    torch.manual_seed(5)
    alone = train([make_module()], 6)[0]
    torch.manual_seed(5)
    first = make_module()
    torch.manual_seed(6)
    together = train([first, make_module()], 6)[0]
    assert together == alone


# ------------------------------------------------------------------------------------- switch
def test_switch_turns_on_exactly_at_the_pretraining_step_and_logs_every_term() -> None:
    L.seed_everything(0)
    recorder = Recorder()
    module = make_module(pretrain_steps=4)
    make_trainer(7, [PretrainingSwitch(), recorder]).fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
    assert recorder.switch == [(0, False), (1, False), (2, False), (3, False), (4, True), (5, True), (6, True)]
    logged = set(recorder.metrics[-1])
    for key in ("train/loss", "train/pseudo_fg_me", "train/pseudo_fg_mae", "train/pseudo_bg"):
        assert key in logged
    for name in ("mil", "mil_suppressed", "snippet", "contrastive", "guide", "sparsity", "mutual"):
        assert f"train/loss_{name}" in logged
    assert recorder.metrics[3]["train/loss_contrastive"] == 0.0 and recorder.metrics[3]["train/pseudo_bg"] == 0.0
    assert recorder.metrics[4]["train/pseudo_bg"] > 0.0
    # the bank is filled from the first switched-on step: 3 steps x 4 videos x 3 background regions
    assert module.memory_bank.sizes()[2] == min(3 * 4 * 3, 8 * 3)


def test_without_the_callback_the_module_only_pretrains() -> None:
    L.seed_everything(0)
    recorder = Recorder()
    module = make_module(pretrain_steps=1)
    make_trainer(4, [recorder]).fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
    assert [flag for _, flag in recorder.switch] == [False] * 4
    assert module.memory_bank.sizes() == [0, 0, 0]


def test_restart_from_a_checkpoint_after_the_switch_starts_switched_on(tmp_path: Path) -> None:
    L.seed_everything(0)
    data = loader(batches(synthetic_videos(8, seed=0)[0]))
    module = make_module(pretrain_steps=3)
    trainer = make_trainer(5, [PretrainingSwitch()])
    trainer.fit(module, data)
    path = tmp_path / "after-switch.ckpt"
    trainer.save_checkpoint(path)
    saved_bank = module.memory_bank.vectors.clone()
    assert module.memory_bank.sizes()[0] > 0

    class BankAtStart(Callback):
        bank: torch.Tensor | None = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.bank is None:
                self.bank = pl_module.memory_bank.vectors.clone()

    recorder, bank = Recorder(), BankAtStart()
    fresh = make_module(pretrain_steps=3)
    assert not fresh.pseudo_labels_enabled
    make_trainer(8, [PretrainingSwitch(), recorder, bank]).fit(fresh, data, ckpt_path=str(path))
    assert recorder.switch == [(5, True), (6, True), (7, True)]
    assert torch.equal(bank.bank, saved_bank)


def test_load_from_checkpoint_restores_the_memory_bank_and_settings(tmp_path: Path) -> None:
    L.seed_everything(0)
    module = make_module(pretrain_steps=2, mplg={"threshold": 0.7})
    trainer = make_trainer(5, [PretrainingSwitch()])
    trainer.fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = PWESModule.load_from_checkpoint(path)
    assert restored.memory_bank.sizes() == module.memory_bank.sizes() != [0, 0, 0]
    assert torch.equal(restored.memory_bank.vectors, module.memory_bank.vectors)
    assert torch.equal(restored.memory_bank.pointer, module.memory_bank.pointer)
    assert restored.mplg_config.threshold == 0.7 and restored.pretrain_steps == 2
    assert restored.region_counts.as_dict() == REGIONS
    for (name, a), (_, b) in zip(module.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), name
    optimizer = restored.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == ADAM["lr"]


# ----------------------------------------------------------------------------------- training
def run(seed: int, steps: int, pretrain_steps: int, **kwargs) -> tuple[PWESModule, Recorder]:
    L.seed_everything(seed)
    items, _ = synthetic_videos(16, seed=0)
    module = make_module(pretrain_steps=pretrain_steps, **kwargs)
    recorder = Recorder()
    make_trainer(steps, [PretrainingSwitch(), recorder]).fit(module, loader(batches(items)))
    return module, recorder


def test_a_short_run_lowers_the_loss_and_finds_the_expressions() -> None:
    module, recorder = run(seed=0, steps=60, pretrain_steps=20)
    first, last = np.mean(recorder.losses[:5]), np.mean(recorder.losses[-5:])
    assert last < 0.7 * first
    for term in ("train/loss_mil", "train/loss_mil_suppressed", "train/loss_snippet"):
        assert np.mean([m[term] for m in recorder.metrics[-5:]]) < np.mean([m[term] for m in recorder.metrics[:5]])
    # the contrastive loss falls once DFCL runs (from its first full-bank steps to the end)
    contrastive = [m["train/loss_contrastive"] for m in recorder.metrics[22:]]
    assert np.mean(contrastive[-5:]) < np.mean(contrastive[:5])
    # the MaE pseudo labels of the trained model lie mostly inside the true MaE intervals
    items, truth = synthetic_videos(16, seed=0)
    module.eval()
    hits = total = 0
    with torch.no_grad():
        for k, batch in enumerate(batches(items)):
            output = module.network(batch.rgb, batch.flow, batch.mask)
            pseudo = module.generate_pseudo_labels(output, batch.points, batch.mask)
            for i in range(len(batch)):
                gt = truth[4 * k + i]
                fg = pseudo.foreground[i, : gt.shape[0], 1]
                hits += int((fg & (gt == 1)).sum())
                total += int(fg.sum())
    # chance: MaE snippets are about 5 of 32 (0.16); the trained model's labels are ~0.7 precise
    assert total > 0 and hits / total > 0.6


def test_same_seed_gives_the_identical_loss_sequence() -> None:
    settings = dict(network={**TINY, "dropout": 0.5})
    _, a = run(seed=3, steps=12, pretrain_steps=4, **settings)
    _, b = run(seed=3, steps=12, pretrain_steps=4, **settings)
    _, c = run(seed=4, steps=12, pretrain_steps=4, **settings)
    assert a.losses == b.losses
    assert a.losses != c.losses


# --------------------------------------------------------------------------------- prediction
def test_predict_returns_trimmed_float32_arrays_in_eval_mode() -> None:
    L.seed_everything(0)
    items, _ = synthetic_videos(5, seed=7)
    module = make_module(network={**TINY, "dropout": 0.5})
    data = batches(items, size=3)
    predictions = make_trainer(1, []).predict(module, loader(data))
    flat = [p for batch in predictions for p in batch]
    assert [p.video for p in flat] == [item.name for item in items]
    for item, pred in zip(items, flat):
        T = item.rgb.shape[0]
        assert isinstance(pred, VideoPrediction)
        assert pred.attention.shape == (T,) and pred.tcam.shape == (T, 3) and pred.video_scores.shape == (3,)
        assert pred.attention.dtype == pred.tcam.dtype == pred.video_scores.dtype == np.float32
        assert np.allclose(pred.tcam_suppressed, pred.tcam * pred.attention[:, None], atol=1e-6)
    # eval mode: dropout off, so a video predicted alone gives the same numbers
    module.eval()
    with torch.no_grad():
        alone = module.network(data[0].rgb[:1, : items[0].rgb.shape[0]], data[0].flow[:1, : items[0].rgb.shape[0]],
                               torch.ones(1, items[0].rgb.shape[0], dtype=torch.bool))
    assert np.allclose(flat[0].attention, alone.attention[0].numpy(), atol=1e-5)
    assert np.allclose(flat[0].video_scores, alone.video_scores[0].numpy(), atol=1e-6)


def test_the_switch_refuses_a_module_without_a_switch() -> None:
    with pytest.raises(TypeError, match="declares no `pretrain_steps`"):
        PretrainingSwitch().on_train_batch_start(make_trainer(1, []), L.LightningModule(), None, 0)
