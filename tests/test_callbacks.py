"""The training callbacks: MPLG, PPLM, Gaussian and DFCL switch on at their start_step, feed the
module through its hook, read a clean (eval-mode, no-grad) forward, do nothing under video or
full supervision, keep the DFCL bank in the checkpoint (a resumed run equals an uninterrupted
one), and are built from conf/callbacks/."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from conftest import compose_train
from tiny_model import QUIET, REGIONS, TINY, Recorder, batches, loader, make_module, make_trainer, synthetic_videos

from pwes.callbacks import DFCLCallback, GaussianCallback, MPLGCallback, OracleCallback, PPLMCallback
from pwes.callbacks.grad_share import GradShareCallback
from pwes.callbacks.diagnostics import DiagnosticsCallback
from pwes.callbacks.gaussian import GaussianConfig, gaussian_targets
from pwes.config import ConfigError
from pwes.model.dfcl import RegionCounts, sample_region_vectors
from pwes.model.module import StepContext
from pwes.model.mplg import generate_mplg
from pwes.model.targets import combine_targets, hard_targets
from pwes.fold import build_callbacks

pytestmark = [pytest.mark.filterwarnings(QUIET), pytest.mark.usefixtures("one_thread")]



def dfcl(start_step: int = 0, **kwargs) -> DFCLCallback:
    return DFCLCallback(start_step, regions=REGIONS, bank_videos=8, **kwargs)


# ------------------------------------------------------------------------------- switching on
def test_mplg_and_dfcl_switch_on_at_their_start_step() -> None:
    L.seed_everything(0)
    recorder, contrastive = Recorder(), dfcl(start_step=4)
    module = make_module()
    make_trainer(7, [MPLGCallback(start_step=2), contrastive, recorder]).fit(module, loader(batches(synthetic_videos(8, 0)[0])))
    assert ["train/pseudo_bg" in m for m in recorder.metrics] == [False, False] + [True] * 5
    assert ["train/loss_contrastive" in m for m in recorder.metrics] == [False] * 4 + [True] * 3
    assert recorder.metrics[2]["train/pseudo_bg"] > 0
    # 3 DFCL steps x 4 videos x (3 background regions + the main one), capped at 8 videos' worth
    assert contrastive.bank.sizes()[2] == min(3 * 4 * 4, 8 * 4)


@pytest.mark.parametrize("supervision", ["video", "full"])
def test_callbacks_do_nothing_without_point_supervision(supervision: str) -> None:
    L.seed_everything(0)
    recorder, contrastive = Recorder(), dfcl()
    module = make_module(supervision=supervision)
    make_trainer(3, [MPLGCallback(), contrastive, recorder]).fit(module, loader(batches(synthetic_videos(8, 0)[0])))
    assert not any("train/pseudo_bg" in m or "train/loss_contrastive" in m for m in recorder.metrics)
    assert contrastive.bank.sizes() == [0, 0, 0]


@pytest.mark.parametrize("source", [MPLGCallback, PPLMCallback, GaussianCallback])
def test_every_pseudo_label_source_trains(source) -> None:
    L.seed_everything(0)
    recorder = Recorder()
    make_trainer(4, [source(start_step=1), dfcl(start_step=1), recorder]).fit(make_module(), loader(batches(synthetic_videos(8, 0)[0])))
    assert all(math.isfinite(loss) for loss in recorder.losses)
    assert recorder.metrics[-1]["train/pseudo_bg"] > 0 and "train/loss_contrastive" in recorder.metrics[-1]


@pytest.mark.parametrize("callback", [MPLGCallback(), dfcl(), DiagnosticsCallback(), GradShareCallback()])
def test_callbacks_refuse_a_module_without_the_host_protocol_once_at_setup(callback) -> None:
    # one line naming every missing member of pwes.callbacks.host.CallbackHost (log, device: Lightning's)
    missing = "clean_forward, contribute, feature_dim, loss_report, network, takes_loss_terms, takes_pseudo_labels"
    with pytest.raises(TypeError, match=f"LightningModule has no {missing} \\(the callback host protocol"):
        callback.setup(make_trainer(1, []), L.LightningModule(), "fit")
    callback.setup(make_trainer(1, []), make_module(), "fit")  # a PWESModule is a host


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: MPLGCallback(variant="cf"), "callbacks.mplg.variant: 'cf' is not one of"),
        (lambda: MPLGCallback(class_similarity=False), "callbacks.mplg: class_similarity follow from variant"),
        (lambda: MPLGCallback(threshold=1.5), "callbacks.mplg.threshold"),
        (lambda: MPLGCallback(start_step=-1), "callbacks.mplg.start_step"),
        (lambda: PPLMCallback(top_ratio=0.0), "callbacks.pplm.top_ratio"),
        (lambda: GaussianCallback(edge_ratio=0.0), "callbacks.gaussian.edge_ratio"),
        (lambda: DFCLCallback(regions={"background": 0}), "callbacks.dfcl.regions.background"),
        (lambda: DFCLCallback(temperature=0.0), "callbacks.dfcl.temperature"),
    ],
)
def test_bad_callback_settings_name_the_setting(build, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        build()
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------ clean forward
class SpyMPLG(MPLGCallback):
    """MPLG that also computes, at the same moment, the labels of an explicit eval-mode forward and
    of the dropout-perturbed training-mode forward."""

    def __init__(self) -> None:
        super().__init__(start_step=0)
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def pseudo_targets(self, output, batch):
        targets = super().pseudo_targets(output, batch)
        module = self._module
        module.eval()
        with torch.no_grad():
            clean = module.network(batch.rgb, batch.flow, batch.mask)
        module.train()
        with torch.no_grad():
            noisy = module.network(batch.rgb, batch.flow, batch.mask)
        labels = [generate_mplg(o.features, o.attention, o.tcam, batch.points, batch.mask, config=self.config) for o in (clean, noisy)]
        expected, perturbed = (hard_targets(x.foreground, x.background, x.class_weights) for x in labels)
        self.pairs.append((targets.targets, expected.targets, perturbed.targets))
        assert torch.equal(targets.class_weights, expected.class_weights)
        return targets

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._module = pl_module
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)


def test_pseudo_labels_come_from_the_eval_mode_forward_despite_dropout() -> None:
    L.seed_everything(0)
    spy = SpyMPLG()
    make_trainer(4, [spy]).fit(make_module(network={**TINY, "dropout": 0.9}), loader(batches(synthetic_videos(8, 0)[0])))
    assert len(spy.pairs) == 4
    for targets, expected, _ in spy.pairs:
        assert torch.equal(targets, expected)
    assert any(not torch.equal(targets, perturbed) for targets, _, perturbed in spy.pairs)  # dropout would change them


def test_dfcl_anchors_take_gradients_while_the_bank_gets_clean_vectors() -> None:
    torch.manual_seed(0)
    module = make_module(network={**TINY, "dropout": 0.9})
    module.train()
    callback = dfcl()
    callback.setup(None, module, "fit")
    batch = batches(synthetic_videos(4, 0)[0])[0]
    targets = combine_targets(batch.points, hard_targets(torch.zeros(*batch.mask.shape, 2, dtype=torch.bool), batch.mask.clone()), batch.mask)
    callback.bank.enqueue(torch.randn(6, module.feature_dim), torch.tensor([0, 1, 2, 0, 1, 2]))
    output = module.network(batch.rgb, batch.flow, batch.mask)
    loss = callback.contrastive_loss(StepContext(batch, output, targets))
    loss.backward()
    assert loss.item() > 0 and module.network.classifier.weight.grad is None  # features only
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.network.fusion.parameters())
    callback.enqueue(module.clean_forward(batch), targets)  # what on_train_batch_end does after the step
    module.eval()
    with torch.no_grad():
        clean = module.network(batch.rgb, batch.flow, batch.mask)
    regions = sample_region_vectors(clean.features, targets.hard_labels(), RegionCounts(**REGIONS), main_region=True)
    vectors, classes = regions.flatten()
    keys, key_classes = callback.bank.keys()
    for c in range(3):
        stored = keys[key_classes == c][-int((classes == c).sum()):] if int((classes == c).sum()) else keys[:0]
        assert torch.allclose(stored, F.normalize(vectors[classes == c], dim=-1), atol=1e-6), c


def test_dfcl_enqueues_the_clean_forward_from_before_the_optimizer_step() -> None:
    import copy

    torch.manual_seed(0)
    module = make_module(optimizer_config={"_target_": "torch.optim.Adam", "lr": 0.5})  # a big step
    before = copy.deepcopy(module).eval()
    callback = dfcl()
    batch = batches(synthetic_videos(4, 0)[0])[0]
    make_trainer(1, [callback]).fit(module, loader([batch]))
    sets = before.snippet_targets(batch).hard_labels()  # step 0: the point labels alone
    with torch.no_grad():
        features = {"before": before.network(batch.rgb, batch.flow, batch.mask).features,
                    "after": module.eval().network(batch.rgb, batch.flow, batch.mask).features}
    keys, _ = callback.bank.keys()
    for when, expected in features.items():
        vectors, classes = sample_region_vectors(expected, sets, RegionCounts(**REGIONS), main_region=True).flatten()
        vectors = torch.cat([vectors[classes == c] for c in range(3)])  # the bank's class-major order
        assert keys.shape == vectors.shape
        assert torch.allclose(keys, F.normalize(vectors, dim=-1), atol=1e-6) == (when == "before"), when


# --------------------------------------------------------------------------------- resume
def fit(steps: int, callbacks: list, ckpt_path: str | None = None, **kwargs):
    L.seed_everything(0)
    module = make_module()
    trainer = make_trainer(steps, callbacks, **kwargs)
    trainer.fit(module, loader(batches(synthetic_videos(16, 0)[0])), ckpt_path=ckpt_path)
    return module


class ForgetfulDFCL(DFCLCallback):
    def load_state_dict(self, state_dict) -> None:  # a bank that is not restored
        pass


def test_a_run_resumed_after_the_switch_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    # 4 batches per epoch; pseudo labels and DFCL from step 2. The first run saves a checkpoint
    # at step 4 and is "killed" at step 6; the resumed run continues from that checkpoint to 8.
    first = dfcl(start_step=2)
    saver = ModelCheckpoint(dirpath=tmp_path, filename="step{step}", every_n_train_steps=4, save_top_k=-1)
    fit(6, [MPLGCallback(start_step=2), first, saver], enable_checkpointing=True)
    (path,) = tmp_path.glob("*.ckpt")
    assert first.bank.sizes()[0] > 0
    whole_bank = dfcl(start_step=2)
    whole = fit(8, [MPLGCallback(start_step=2), whole_bank])
    resumed_bank = dfcl(start_step=2)
    resumed = fit(8, [MPLGCallback(start_step=2), resumed_bank], ckpt_path=str(path))
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(whole_bank.bank.vectors, resumed_bank.bank.vectors)
    assert torch.equal(whole_bank.bank.pointer, resumed_bank.bank.pointer)
    # the bank matters: resuming without it gives other weights
    forgetful = fit(8, [MPLGCallback(start_step=2), ForgetfulDFCL(2, regions=REGIONS, bank_videos=8)], ckpt_path=str(path))
    assert not all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), forgetful.state_dict().values()))


# ---------------------------------------------------------------------------------- gaussian
def test_gaussian_targets_by_hand() -> None:
    # constant features: the foreground similarity is 1 everywhere, so refined attention = attention
    attention = torch.tensor([[0.1, 0.1, 0.2, 0.6, 0.8, 0.9, 0.7, 0.3, 0.1, 0.1, 0.05, 0.1]])
    features = torch.ones(1, 12, 4)
    points = torch.zeros(1, 12, 2)
    points[0, 5, 1] = 1.0  # MaE point at 5
    mask = torch.ones(1, 12, dtype=torch.bool)
    targets = gaussian_targets(attention, features, points, mask, GaussianConfig())
    # edge at 0.45: left 4, 3 (L = 2), right 6 (R = 1) -> half width 2, target 0.5 two snippets out:
    # 2^-(d^2/4): d = 0..5 -> 1, 0.841, 0.5, 0.210, 0.0625, 0.013 (below min_target 0.05)
    mae = [2 ** -((t - 5) ** 2 / 4) for t in range(12)]
    soft = [1 <= t <= 9 for t in range(12)]
    expected = torch.tensor([[0.0, m if s else 0.0, 1.0 - m if s else 1.0] for m, s in zip(mae, soft)])
    # background pool: the 6 lowest attentions {10, 0, 1, 8, 9, 11} minus the soft ones -> {0, 10, 11}
    assert torch.allclose(targets.targets[0], expected, atol=1e-6)
    assert targets.weight[0].tolist() == [1.0] * 12
    assert targets.targets[0, 3, 1].item() == pytest.approx(0.5, abs=1e-6)
    assert targets.hard_labels()[0, :, 1].nonzero().flatten().tolist() == [3, 4, 5, 6, 7]


# ------------------------------------------------------------------------------------ config
def test_the_configured_callbacks_take_the_dataset_settings() -> None:
    cfg = compose_train(["dataset=casme2", "dataset.root=/x"])
    mplg, contrastive, diagnostics, grad_share = build_callbacks(cfg)
    assert isinstance(mplg, MPLGCallback) and isinstance(contrastive, DFCLCallback) and isinstance(diagnostics, DiagnosticsCallback)
    assert isinstance(grad_share, GradShareCallback) and grad_share.every_n_steps == 50 and grad_share.parameters == "shared"
    assert mplg.config.weights_in_loss and not mplg.config.coarse_mask_in_loss and mplg.config.background == "lowest_0.6T"
    assert mplg.start_step == contrastive.start_step == 80
    assert mplg.config.name == "full" and mplg.config.threshold == 0.8 and mplg.config.class_weights == "softmax"
    assert contrastive.counts.as_dict() == {"background": 10, "me": 2, "mae": 3} and contrastive.config.main_region
    samm = build_callbacks(compose_train(["dataset=samm", "dataset.root=/x", "callbacks.mplg.variant=caf2"]))
    assert samm[0].start_step == 50 and samm[1].counts.background == 8
    assert samm[0].config.class_similarity and not samm[0].config.foreground_similarity


@pytest.mark.parametrize(
    ("overrides", "kinds"),
    [
        ([], [MPLGCallback, DFCLCallback]),
        (["~callbacks.dfcl"], [MPLGCallback]),
        (["callbacks/pseudo=pplm"], [PPLMCallback, DFCLCallback]),
        (["callbacks/pseudo=gaussian"], [GaussianCallback, DFCLCallback]),
        (["callbacks/pseudo=none", "callbacks/contrastive=none"], []),
        (["ablation=pplm"], [PPLMCallback]),
        (["ablation=mplg"], [MPLGCallback]),
        (["ablation=mplg_dfcl"], [MPLGCallback, DFCLCallback]),
        (["ablation=points_only"], []),
        (["ablation=oracle_mplg_bg"], [OracleCallback, DFCLCallback]),
        (["ablation=oracle_all_bg"], [OracleCallback, DFCLCallback]),
    ],
)
def test_callback_swaps(overrides: list[str], kinds: list[type]) -> None:
    built = build_callbacks(compose_train(overrides))
    assert [type(c) for c in built] == [*kinds, DiagnosticsCallback, GradShareCallback]  # logged only, on by default
    oracle = [c for c in built if isinstance(c, OracleCallback)]
    if oracle:
        assert oracle[0].background == ("all" if "ablation=oracle_all_bg" in overrides else "lowest_0.6T")
