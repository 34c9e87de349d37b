"""Training iterations per second of the default PWES model (conf/model/pwes.yaml).

Times full iterations (forward, every loss term, backward, Adam step) on random I3D-like
batches, both before the pretraining switch (MIL, attention and point losses) and after it (MPLG
pseudo labels and DFCL with a full memory bank as well). A third case adds, before the switch,
what the diagnostics callback (``callbacks.diagnostics``, logging only) costs there: one extra
eval-mode forward and the attention AUC. After the switch it reuses MPLG's forward. Two batch shapes: CAS(ME)^2-sized (8
videos x 368 snippets x 1024 + 1024 features) and a small one (4 x 96 x 1024 + 1024).

    python benchmarks/bench_train.py                    # CPU, a few steps (under a minute)
    python benchmarks/bench_train.py --device cuda      # TF32 enabled on CUDA
    python benchmarks/bench_train.py --set network.stream_dim=1024 network.fused_dim=2048

The loop is a plain PyTorch loop over the module's own ``training_step``, with what the MPLG and
DFCL callbacks contribute after the switch (the Lightning Trainer adds a small constant per step
on top).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"
SIZES = {"casme2": (8, 368), "small": (4, 96)}


@dataclass
class Timing:
    size: str
    phase: str
    batch: int
    snippets: int
    seconds_per_step: float

    @property
    def iterations_per_second(self) -> float:
        return 1.0 / self.seconds_per_step


def build_module(rgb_dim: int, flow_dim: int, overrides: list[str]):
    """The default model from conf/model/pwes.yaml (CAS(ME)^2 dataset settings)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF_MODEL), version_base="1.3"):
        cfg = compose("pwes", overrides=overrides)
    cfg.optimizer.lr = 0.0005  # dataset.lr of CAS(ME)^2
    return instantiate(cfg, rgb_dim=rgb_dim, flow_dim=flow_dim)


def random_batch(batch: int, snippets: int, dim: int, device: torch.device, seed: int = 0):
    """I3D-like features (non-negative, mean ~0.23), lengths from 75% to 100% of ``snippets``,
    one MaE and (every other video) one ME point label."""
    from pwes.data.batch import Batch, lengths_to_mask

    g = torch.Generator().manual_seed(seed)
    lengths = torch.linspace(int(0.75 * snippets), snippets, batch).long()
    mask = lengths_to_mask(lengths, snippets)
    rgb = (0.25 * torch.randn(batch, snippets, dim, generator=g)).abs() * mask[..., None]
    flow = (0.25 * torch.randn(batch, snippets, dim, generator=g)).abs() * mask[..., None]
    points = torch.zeros(batch, snippets, 2)
    labels = torch.zeros(batch, 2)
    for b, n in enumerate(lengths.tolist()):
        points[b, int(torch.randint(0, n, (1,), generator=g)), 1] = 1.0
        labels[b, 1] = 1.0
        if b % 2 == 0:
            points[b, int(torch.randint(0, n, (1,), generator=g)), 0] = 1.0
            labels[b, 0] = 1.0
    return Batch(rgb, flow, mask, lengths, labels, points, videos=[f"v{b}" for b in range(batch)]).to(device)


def time_steps(module, batch, optimizer, pseudo_active: bool, steps: int, warmup: int, device: torch.device, diagnostics: bool = False) -> float:
    """Mean seconds per training iteration after ``warmup`` untimed ones."""
    from pwes.callbacks import DFCLCallback, MPLGCallback
    from pwes.callbacks.diagnostics import attention_auc

    truth = torch.zeros(*batch.mask.shape, 2, dtype=torch.bool)
    truth[:, ::7, 1] = True  # any labelling: the AUC's cost does not depend on it

    mplg, dfcl = MPLGCallback(), DFCLCallback(regions={"background": 10, "me": 2, "mae": 3})
    dfcl.bank = dfcl.make_bank(module.feature_dim).to(device)

    def step() -> None:
        if pseudo_active:  # what the two callbacks do before each batch (pwes.callbacks)
            module.contribute("mplg", targets=mplg.pseudo_targets(module.clean_forward(batch), batch))
            module.contribute("contrastive", loss_term=lambda context: dfcl.contrastive_loss(context, module), weight=0.1)
        if diagnostics:  # what DiagnosticsCallback does around the step (pwes.callbacks.diagnostics)
            attention = module.clean_forward(batch).attention.detach().float().cpu()
            attention_auc(attention, truth, batch.mask.detach().cpu())
        loss = module.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case (default: 2 on CPU, 50 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 on CPU, 10 on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: all cores)")
    parser.add_argument("--dim", type=int, default=1024, help="feature width of each stream (default 1024, I3D)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    args = parser.parse_args(argv)

    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        print(f"error: --device {args.device!r}: {err}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("error: --device cuda but no CUDA device is available", file=sys.stderr)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    threads = args.threads or len(os.sched_getaffinity(0))
    if device.type == "cpu":
        torch.set_num_threads(threads)
    steps = args.steps or (50 if device.type == "cuda" else 2)
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)

    from hydra.errors import HydraException

    torch.manual_seed(0)
    try:
        module = build_module(args.dim, args.dim, args.set).to(device).train()
    except (HydraException, ValueError) as err:
        # instantiate wraps the model's own one-line ConfigError: print that one
        cause = err.__cause__ if isinstance(err.__cause__, ValueError) else err
        print(f"error: {cause}", file=sys.stderr)
        return 2
    params = sum(p.numel() for p in module.parameters())
    timings: list[Timing] = []
    for size in args.sizes:
        batch_size, snippets = SIZES[size]
        batch = random_batch(batch_size, snippets, args.dim, device)
        for phase, active, diagnostics in (("pretraining", False, False), ("pretrain+diag", False, True), ("MPLG+DFCL", True, False)):
            optimizer = module.configure_optimizers()
            seconds = time_steps(module, batch, optimizer, active, steps, warmup, device, diagnostics)
            timings.append(Timing(size, phase, batch_size, snippets, seconds))

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} thread(s)"
    net = module.network_config
    print(f"PWES training iterations on {where}; model stream_dim={net.stream_dim} fused_dim={net.fused_dim}, "
          f"{params / 1e6:.1f}M parameters; {steps} timed steps after {warmup} warm-up")
    print(f"{'batch':<8} {'shape':<18} {'phase':<14} {'s/step':>9} {'it/s':>8} {'vs pretraining':>15}")
    base = {t.size: t.seconds_per_step for t in timings if t.phase == "pretraining"}
    for t in timings:
        shape = f"{t.batch}x{t.snippets}x{args.dim}+{args.dim}"
        print(f"{t.size:<8} {shape:<18} {t.phase:<14} {t.seconds_per_step:>9.4f} {t.iterations_per_second:>8.2f} {t.seconds_per_step / base[t.size]:>14.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
