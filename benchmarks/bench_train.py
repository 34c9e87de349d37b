"""Milliseconds per training iteration of the default PWES model (conf/model/pwes.yaml), in fp32
and bf16 autocast, with nn.Dropout (``dropout_impl=torch``, the stream before FastDropout) and
FastDropout (``fast``), each as a speed-up over fp32 with nn.Dropout in the same phase.

Times full iterations (forward, every loss term, backward, Adam step) on random I3D-like
batches, before the pretraining switch (MIL, attention and point losses), before it with what the
diagnostics callback (``callbacks.diagnostics``, logging only) adds there (one extra eval-mode
forward and the attention AUC; after the switch it reuses MPLG's forward), and after it (MPLG
pseudo labels from the clean forward and DFCL with a full memory bank). Sizes, with the model
widths their dataset config sets:

* ``small``: synthetic_small, 8 videos x 124 snippets x 64-d, widths 64/128/32;
* ``casme2@128``: synthetic_casme2 at feature width 128, 8 x 368 x 128, widths 128/256/64;
* ``casme2``: CAS(ME)^2 with I3D, 8 x 368 x 1024, the model's own widths 512/1024/256 (not in the
  default list: about 2 s a step on 2 cores).

The variants are timed in interleaved rounds (each round times every variant once) and the
median round is shown, so a load change on a shared machine hits all of them alike.

    python benchmarks/bench_train.py                    # CPU, under a minute
    python benchmarks/bench_train.py --sizes casme2 --rounds 2
    python benchmarks/bench_train.py --device cuda      # TF32 on CUDA; bf16 rows need native CPU bf16 and are CPU-only
    python benchmarks/bench_train.py --set network.input_norm=none

The loop is a plain PyTorch loop over the module's own ``training_step``, with what the MPLG and
DFCL callbacks contribute after the switch, under ``torch.autocast`` for bf16 as the
``trainer=cpu_bf16`` Trainer runs it (the Lightning Trainer adds a small constant per step).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"


@dataclass(frozen=True)
class Size:
    batch: int
    snippets: int
    dim: int
    widths: tuple[int, int, int] | None  # stream, fused, attention; None: conf/model/pwes.yaml's


SIZES = {
    "small": Size(8, 124, 64, (64, 128, 32)),
    "casme2@128": Size(8, 368, 128, (128, 256, 64)),
    "casme2": Size(8, 368, 1024, None),
}
PHASES = ("pretraining", "pretrain+diag", "MPLG+DFCL")
VARIANTS = (("fp32", "torch"), ("fp32", "fast"), ("bf16", "torch"), ("bf16", "fast"))


def build_module(rgb_dim: int, flow_dim: int, overrides: list[str]):
    """The default model from conf/model/pwes.yaml (CAS(ME)^2 dataset settings)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
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


class Case:
    """One (phase, precision, dropout) case: its own module, optimizer and callbacks."""

    def __init__(self, size: Size, phase: str, precision: str, dropout: str, overrides: list[str], device: torch.device) -> None:
        from pwes.callbacks import DFCLCallback, MPLGCallback

        widths = [] if size.widths is None else [
            f"network.stream_dim={size.widths[0]}", f"network.fused_dim={size.widths[1]}", f"network.attention_dim={size.widths[2]}"]
        chosen = {o.split("=", 1)[0] for o in overrides}  # --set wins over the size's widths
        widths = [w for w in widths if w.split("=", 1)[0] not in chosen]
        torch.manual_seed(0)
        self.module = build_module(size.dim, size.dim, [*widths, f"network.dropout_impl={dropout}", *overrides]).to(device).train()
        self.optimizer = self.module.configure_optimizers()
        self.batch = random_batch(size.batch, size.snippets, size.dim, device)
        self.phase, self.precision, self.device = phase, precision, device
        self.truth = torch.zeros(*self.batch.mask.shape, 2, dtype=torch.bool)
        self.truth[:, ::7, 1] = True  # any labelling: the AUC's cost does not depend on it
        self.mplg, self.dfcl = MPLGCallback(), DFCLCallback(regions={"background": 10, "me": 2, "mae": 3})
        self.dfcl.bank = self.dfcl.make_bank(self.module.feature_dim).to(device)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self) -> None:
        from pwes.callbacks.diagnostics import attention_auc

        module, batch = self.module, self.batch
        with self.autocast():  # as trainer=cpu_bf16: training step and the clean forward in bf16
            if self.phase == "MPLG+DFCL":  # what the two callbacks do before each batch (pwes.callbacks)
                clean = module.clean_forward(batch)
                module.contribute("mplg", targets=self.mplg.pseudo_targets(clean, batch))
                module.contribute("contrastive", loss_term=self.dfcl.contrastive_loss, weight=0.1)
            if self.phase == "pretrain+diag":  # what DiagnosticsCallback does (pwes.callbacks.diagnostics)
                attention = module.clean_forward(batch).attention.detach().float().cpu()
                attention_auc(attention, self.truth, batch.mask.detach().cpu())
            outputs = module.training_step(batch, 0)
        self.optimizer.zero_grad(set_to_none=True)
        outputs["loss"].backward()
        self.optimizer.step()
        if self.phase == "MPLG+DFCL" and outputs["targets"] is not None:  # DFCL after the step
            with self.autocast():
                self.dfcl.enqueue(clean, outputs["targets"])
        module.on_train_batch_end(outputs, batch, 0)  # drops the batch's clean forward

    def time(self, steps: int) -> float:
        """Mean seconds per step over ``steps`` steps."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case and round (default: 3 on CPU, 20 on CUDA)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is shown (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per case first (default: 1 on CPU, 10 on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: all cores)")
    parser.add_argument("--sizes", nargs="+", default=["small", "casme2@128"], choices=list(SIZES))
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=list(PHASES))
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
    steps = args.steps or (20 if device.type == "cuda" else 3)
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)

    from hydra.errors import HydraException

    from pwes.precision import native_bf16_flags

    flags = native_bf16_flags()
    variants = [v for v in VARIANTS if v[0] == "fp32" or (device.type == "cpu" and flags)]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} thread(s), native bf16: {', '.join(flags) or 'none'}"
    print(f"PWES training iterations on {where}; median of {args.rounds} interleaved rounds of {steps} steps after {warmup} warm-up")
    if len(variants) < len(VARIANTS):
        print("(bf16 rows left out: bf16 is timed on a CPU with native bf16 only)")
    print(f"{'size':<11} {'shape':<15} {'phase':<14} {'precision':<9} {'dropout':<8} {'ms/step':>9} {'speed-up':>9}")
    for size_name in args.sizes:
        size = SIZES[size_name]
        for phase in args.phases:
            try:
                cases = {v: Case(size, phase, *v, args.set, device) for v in variants}
            except (HydraException, ValueError) as err:
                cause = err.__cause__ if isinstance(err.__cause__, ValueError) else err  # the model's one-line ConfigError
                print(f"error: {cause}", file=sys.stderr)
                return 2
            for case in cases.values():
                for _ in range(warmup):
                    case.step()
            rounds: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for v, case in cases.items():
                    rounds[v].append(case.time(steps))
            base = statistics.median(rounds[VARIANTS[0]])
            shape = f"{size.batch}x{size.snippets}x{size.dim}"
            for (precision, dropout), seconds in rounds.items():
                ms = 1000 * statistics.median(seconds)
                print(f"{size_name:<11} {shape:<15} {phase:<14} {precision:<9} {dropout:<8} {ms:>9.1f} {1000 * base / ms:>8.2f}x", flush=True)
    print("speed-up: fp32 with nn.Dropout (dropout_impl=torch, the step before these changes) over this row, same size and phase")
    return 0


if __name__ == "__main__":
    sys.exit(main())
