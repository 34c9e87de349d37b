"""Peak memory of training on a large feature set: a CAS(ME)^3-sized synthetic set (956 videos x
~325 snippets x 2 x 1024 float32, ~2.4 GB) is validated and batched from disk, and a few training
steps run. Prints peak RSS next to the set's size. Each measurement runs in a fresh process.

    python benchmarks/bench_memory.py [--preset casme3] [--steps 20] [--cache none]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(preset: str, cache_dir: str, steps: int, cache: str, hidden: int) -> dict:
    """Runs in the child process: load, validate, batch and train; report peak RSS per stage."""
    import torch

    from pwes.data.datamodule import PWESDataModule, dataset_megabytes
    from pwes.data.layout import load_feature_set
    from pwes.synthetic import PRESETS, ensure_synthetic
    from pwes.model.module import PWESModule

    torch.set_num_threads(2)
    spec = PRESETS[preset]
    root = ensure_synthetic(Path(cache_dir), preset, 0)
    base = peak_rss_mb()
    started = time.perf_counter()
    fs = load_feature_set(root, spec.snippet_length, spec.stride)
    validate_s = time.perf_counter() - started
    after_validate = peak_rss_mb()
    dm = PWESDataModule(fs, [fs.subjects[0]], batch_size=8, cache=cache, seed=0)
    model = PWESModule(rgb_dim=fs.feature_dims[0], flow_dim=fs.feature_dims[1], network={"stream_dim": hidden, "fused_dim": 2 * hidden, "attention_dim": hidden // 2})
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    loader = iter(dm.train_dataloader())
    started = time.perf_counter()
    for step in range(steps):
        batch = next(loader)
        loss = model.compute_losses(batch, model.network(batch.rgb, batch.flow, batch.mask)).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = time.perf_counter() - started
    return {
        "videos": len(fs.videos),
        "snippets": sum(fs.num_snippets.values()),
        "dataset_mb": round(dataset_megabytes(fs), 1),
        "rss_start_mb": round(base, 1),
        "rss_after_validation_mb": round(after_validate, 1),
        "rss_peak_training_mb": round(peak_rss_mb(), 1),
        "validation_s": round(validate_s, 1),
        "seconds_per_step": round(train_s / max(steps, 1), 3),
        "cache": cache,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="casme3")
    parser.add_argument("--cache-dir", default=".cache/synthetic")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cache", default="none", choices=["none", "memory"])
    parser.add_argument("--hidden", type=int, default=256, help="model width for the training steps")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.preset, args.cache_dir, args.steps, args.cache, args.hidden)))
        return
    cmd = [sys.executable, __file__, "--child", "--preset", args.preset, "--cache-dir", args.cache_dir, "--steps", str(args.steps), "--cache", args.cache, "--hidden", str(args.hidden)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"memory ({args.preset}, cache={args.cache}, {result['videos']} videos, {result['snippets']} snippets)")
    print(f"  feature arrays in float32      {result['dataset_mb']:>9.1f} MB")
    print(f"  peak RSS after validation      {result['rss_after_validation_mb']:>9.1f} MB  ({result['validation_s']} s to validate)")
    print(f"  peak RSS after {args.steps:>3} steps        {result['rss_peak_training_mb']:>9.1f} MB  ({result['seconds_per_step']} s/step)")
    print(f"  peak RSS / dataset size        {result['rss_peak_training_mb'] / result['dataset_mb']:>9.2f}")


if __name__ == "__main__":
    main()
