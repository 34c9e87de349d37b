"""PWESModule on its own: the config builds it, losses ignore padding, the callback hook (one
step only, one pseudo-label source, named terms), the clean forward, video and full supervision,
the same seed repeats a run, prediction is trimmed."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from tiny_model import DIM, QUIET, TINY, Recorder, batches, loader, make_module, make_trainer, synthetic_videos

from pwes.callbacks.host import CallbackHost, HostCallback
from pwes.config import ConfigError
from pwes.data.batch import Batch, VideoItem, collate
from pwes.model import PWESModule, VideoPrediction
from pwes.model.targets import SnippetTargets, hard_targets, point_targets

CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"
STEP0_TERMS = {"mil", "mil_suppressed", "snippet", "guide", "sparsity", "mutual"}

pytestmark = [pytest.mark.filterwarnings(QUIET), pytest.mark.usefixtures("one_thread")]



# ------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("recursive", [True, False])
def test_the_model_config_builds_the_module(recursive: bool) -> None:
    with initialize_config_dir(config_dir=str(CONF_MODEL), version_base="1.3"):
        cfg = compose("pwes", overrides=["network.stream_dim=32", "network.fused_dim=32"])
    cfg.optimizer.lr = 0.001  # the training loop's ${dataset.lr}
    # recursive: the optimizer node arrives as a functools.partial; otherwise as its config
    module = instantiate(cfg, rgb_dim=DIM, flow_dim=DIM, _recursive_=recursive)
    assert isinstance(module, PWESModule) and module.supervision == "point" and module.takes_pseudo_labels
    assert module.feature_dim == 32
    target = "torch.optim.adam.Adam" if recursive else "torch.optim.Adam"
    assert module.hparams.optimizer_config == {"_target_": target, "lr": 0.001}
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 0.001


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"supervision": "frame"}, "model.supervision"),
        ({"loss": {"contrastive": 0.1}}, "model.loss: unknown setting(s) contrastive"),
        ({"optimizer": 0.001}, "model.optimizer"),
    ],
)
def test_bad_settings_fail_with_the_setting_named(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_module(**kwargs)
    assert fragment in str(err.value)


def test_topk_points_is_refused_under_video_supervision_when_training_starts() -> None:
    module = make_module(supervision="video", network={**TINY, "topk": "points"})  # constructs: old checkpoints load
    with pytest.raises(ConfigError, match=r"model.network.topk=points .* model.supervision=video"):
        module.on_fit_start()


# ------------------------------------------------------------------------------------- losses
def test_losses_of_a_video_do_not_change_when_it_is_padded_with_garbage() -> None:
    torch.manual_seed(0)
    items, _ = synthetic_videos(2, seed=1)
    module = make_module()
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
        pseudo = hard_targets(torch.zeros(1, batch.rgb.shape[1], 2, dtype=torch.bool), batch.mask & (torch.arange(batch.rgb.shape[1]) < 5))
        reports.append(module.compute_losses(batch, output, pseudo))
    assert set(reports[0].terms) == STEP0_TERMS
    for name, value in reports[0].terms.items():
        assert value.item() == pytest.approx(reports[1].terms[name].item(), abs=1e-5), name
    assert torch.equal(reports[0].targets.targets[0], reports[1].targets.targets[0, :T])
    assert not bool(reports[1].targets.weight[0, T:].any())


def test_video_supervision_is_the_baseline_without_point_terms() -> None:
    module = make_module(supervision="video")
    assert not module.takes_pseudo_labels
    batch = batches(synthetic_videos(4, seed=2)[0])[0]
    output = module.network(batch.rgb, batch.flow, batch.mask)
    report = module.compute_losses(batch, output)
    assert set(report.terms) == STEP0_TERMS - {"snippet"}
    batch.points.zero_()  # the points are not used at all
    again = module.compute_losses(batch, output)
    assert again.total.item() == pytest.approx(report.total.item())
    with pytest.raises(RuntimeError, match="no pseudo labels under supervision='video'"):
        module.contribute("mplg", targets=point_targets(batch.points, batch.mask))
    module.contribute("extra", loss_term=lambda context: context.output.tcam.sum() * 0.0)  # loss terms are taken (MC-WES)


def test_full_supervision_trains_on_the_intervals() -> None:
    module = make_module(supervision="full")
    assert not module.takes_pseudo_labels
    items, truth = synthetic_videos(4, seed=2)
    batch = batches(items)[0]
    output = module.network(batch.rgb, batch.flow, batch.mask)
    report = module.compute_losses(batch, output)
    assert set(report.terms) == STEP0_TERMS
    for i, gt in enumerate(truth):
        T = gt.shape[0]
        expected = torch.nn.functional.one_hot(gt, 3).float()
        assert torch.equal(report.targets.targets[i, :T], expected)
        assert bool(report.targets.weight[i, :T].all()) and not bool(report.targets.weight[i, T:].any())
    batch.intervals = None
    with pytest.raises(ValueError, match="supervision=full"):
        module.compute_losses(batch, output)


# ----------------------------------------------------------------------------------- the hook
class Contributor(Callback):
    """Contributes fixed targets and a constant loss term on chosen steps."""

    def __init__(self, steps: set[int], name: str = "test") -> None:
        self.steps, self.name, self.seen = steps, name, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            fg = torch.zeros(*batch.mask.shape, 2, dtype=torch.bool)
            pl_module.contribute(self.name, targets=hard_targets(fg, batch.mask.clone()))
            pl_module.contribute("extra", loss_term=self.term, weight=0.5)

    def term(self, context) -> torch.Tensor:
        self.seen.append(context.targets.weight.sum().item())
        return context.output.tcam.sum() * 0.0 + 2.0


def test_contributions_hold_for_one_step_only_and_are_logged() -> None:
    L.seed_everything(0)
    recorder, contributor = Recorder(), Contributor({2, 4})
    module = make_module()
    make_trainer(6, [contributor, recorder]).fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
    assert len(contributor.seen) == 2
    # every real snippet is background in the contributed targets: all of them count
    assert contributor.seen[0] > 50
    extra = [m.get("train/loss_extra") for m in recorder.metrics]
    assert extra[2] == 2.0 and extra[4] == 2.0
    # the module keeps nothing after a step: step 1 ran without the term, and so does the first
    # step of a further fit of the same module
    assert "train/loss_extra" not in recorder.metrics[1]
    again = Recorder()
    make_trainer(1, [again]).fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
    assert "train/loss_extra" not in again.metrics[0] and module.loss_report is None  # dropped at batch end


class NeighbourLabels(HostCallback):
    """A toy pseudo-label source and loss term written only against the documented host protocol
    (pwes.callbacks.host): the snippets right of each point are foreground of its class, the
    clean forward's lowest-attention snippet of each video background, plus a smoothness term on
    the attention. It records the targets the step used (outputs["targets"])."""

    def __init__(self, start_step: int) -> None:
        self.start_step, self.used = start_step, []

    def on_train_batch_start(self, trainer, pl_module: CallbackHost, batch, batch_idx) -> None:
        if not pl_module.takes_pseudo_labels or trainer.global_step < self.start_step:
            return
        mask = batch.mask.bool()
        foreground = torch.roll(batch.points > 0, shifts=1, dims=1) & mask[..., None]
        attention = pl_module.clean_forward(batch).attention.masked_fill(~mask, float("inf"))
        background = torch.zeros_like(mask).scatter_(1, attention.argmin(dim=1, keepdim=True), True)
        pl_module.contribute("toy", targets=hard_targets(foreground, background & ~foreground.any(dim=-1)))
        pl_module.contribute("toy_smooth", loss_term=self.smoothness, weight=0.5)
        pl_module.log("train/toy_fg", float(foreground.sum()), batch_size=len(batch))

    def smoothness(self, context) -> torch.Tensor:
        attention, mask = context.output.attention, context.batch.mask.float()
        return (((attention[:, 1:] - attention[:, :-1]) ** 2) * mask[:, 1:] * mask[:, :-1]).mean()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        neighbours = torch.roll(batch.points > 0, shifts=1, dims=1) & batch.mask.bool()[..., None]
        self.used.append((trainer.global_step - 1, outputs["targets"], neighbours))


def test_a_callback_written_against_the_protocol_works_and_removing_it_removes_its_mechanism() -> None:
    def run(callbacks: list) -> tuple[dict, Recorder]:
        L.seed_everything(0)
        recorder, module = Recorder(), make_module(network={**TINY, "dropout": 0.5})
        assert isinstance(module, CallbackHost)
        make_trainer(5, [*callbacks, recorder]).fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
        return {k: v.clone() for k, v in module.state_dict().items()}, recorder

    toy = NeighbourLabels(start_step=2)
    with_toy, recorder = run([toy])
    without, plain_run = run([])
    idle, _ = run([NeighbourLabels(start_step=99)])  # attached but never acting
    assert [("train/loss_toy_smooth" in m) for m in recorder.metrics[:2]] == [False, False]
    assert all("train/loss_toy_smooth" in m and m["train/toy_fg"] > 0 for m in recorder.metrics[2:])
    assert recorder.losses[:2] == plain_run.losses[:2] and recorder.losses[2] != plain_run.losses[2]
    for step, targets, neighbours in toy.used:  # the step's snippet loss used the toy's labels
        foreground = targets.hard_labels()[..., :2]
        assert bool(foreground[neighbours].all()) == (step >= 2), step
    assert any(not torch.equal(value, without[name]) for name, value in with_toy.items())
    for name, value in idle.items():
        assert torch.equal(value, without[name]), name


def test_two_pseudo_label_sources_are_refused() -> None:
    module = make_module()
    batch = batches(synthetic_videos(2, seed=0)[0])[0]
    targets = SnippetTargets(torch.zeros(*batch.mask.shape, 3), torch.zeros(batch.mask.shape))
    module.contribute("mplg", targets=targets)
    with pytest.raises(ConfigError, match="both 'mplg' and 'pplm' give pseudo labels"):
        module.contribute("pplm", targets=targets)
    with pytest.raises(ValueError, match="built-in name"):
        module.contribute("snippet", loss_term=lambda context: context.output.tcam.sum())


def test_clean_forward_is_eval_mode_without_gradient_and_restores_training() -> None:
    torch.manual_seed(0)
    module = make_module(network={**TINY, "dropout": 0.9})
    module.train()
    batch = batches(synthetic_videos(2, seed=0)[0])[0]
    clean = module.clean_forward(batch)
    assert module.network.training and not clean.tcam.requires_grad
    assert module.clean_forward(batch) is clean  # shared for this batch ...
    module.on_train_batch_end(None, batch, 0)
    assert module.clean_forward(batch) is not clean  # ... until the batch ends
    module.eval()
    with torch.no_grad():
        reference = module.network(batch.rgb, batch.flow, batch.mask)
    assert torch.equal(clean.attention, reference.attention) and torch.equal(clean.features, reference.features)
    module.train()
    noisy = module.network(batch.rgb, batch.flow, batch.mask)
    assert not torch.allclose(noisy.features, reference.features)  # dropout 0.9 does change it


# ----------------------------------------------------------------------------------- training
def test_same_seed_gives_the_identical_loss_sequence() -> None:
    def run(seed: int) -> list[float]:
        L.seed_everything(seed)
        recorder = Recorder()
        module = make_module(network={**TINY, "dropout": 0.5})
        make_trainer(8, [recorder]).fit(module, loader(batches(synthetic_videos(8, seed=0)[0])))
        return recorder.losses

    assert run(3) == run(3)
    assert run(3) != run(4)


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
