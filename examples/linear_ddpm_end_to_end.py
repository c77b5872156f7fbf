"""A network trained the way people train them, against the machines: end to end (not run by the tests).

1. ``train``: a small convolutional eps-prediction network (3x3 input convolution to WIDTH channels, 6
   residual 3x3 layers with ReLU and an additive sinusoidal time embedding, zero padding, a 1x1 output
   convolution: receptive field 15x15) trained with Adam on a bank with DDPM's ``linear`` noise schedule
   (Ho et al. 2020: x_t = a(t) x0 + b(t) eps, t uniform on (0.001, 1], loss |eps_hat - eps|^2), for a
   given wall-clock time.
2. ``record``: its trajectories from seeded noise with two samplers, through ``elscli.reference.record``:
   DDPM ancestral sampling (``ddim``, eta = 1, uniform grid; the injected noise is each sample's own stream
   and is stored in the file) and EDM's Heun on the EDM grid (2N - 1 evaluations).

Then, from the shell (README, "A network trained with DDPM's linear schedule"): calibrate bbELS against each
reference with ``elscli locality-scan``, sample bbELS from the references' seeds and compare.

Needs PyTorch, which elscli does not depend on::

    python3 -m venv .venv-torch && . .venv-torch/bin/activate && pip install torch==2.13.0 -e .
    elscli build-bank ../shared/data/mnist-5k -o mnist5k.h5
    python examples/linear_ddpm_end_to_end.py train --bank mnist5k.h5 --minutes 8 -o linear-net.pt
    python examples/linear_ddpm_end_to_end.py record linear-net.pt --samples 16 --out-dir refs
"""
from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import elscli
import elscli.reference
from elscli.noise import get_noise_schedule
from elscli.sampler import sample_streams

SCHEDULE = "linear"


class TimeEmbedding(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.width // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        angles = 1000.0 * t[:, None].float() * freqs[None]          # DDPM's step scale: t = k / 1000
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))


class EpsNet(nn.Module):
    """Convolution only (locality and translation equivariance), zero padding, receptive field 15x15."""

    def __init__(self, channels: int = 1, width: int = 32, blocks: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.time = TimeEmbedding(width)
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1) for _ in range(blocks)])
        self.out = nn.Conv2d(width, channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        emb = self.time(t)[:, :, None, None]
        for conv in self.convs:
            h = h + conv(torch.relu(h + emb))
        return self.out(torch.relu(h))


def train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    bank = elscli.Bank.open(args.bank)
    images = torch.from_numpy(np.asarray(bank.images, dtype=np.float32))
    sched = get_noise_schedule(SCHEDULE)
    net = EpsNet(images.shape[1], args.width)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    done_steps, done_minutes = 0, 0.0
    if args.init:                                  # continue an earlier training
        ckpt = torch.load(args.init)
        net.load_state_dict(ckpt["state"])
        if "optimizer" in ckpt:
            opt.load_state_dict(ckpt["optimizer"])
        done_steps, done_minutes = ckpt.get("steps"), ckpt.get("minutes")
        if done_steps is None:                     # an early checkpoint: the counts are in its description
            m = re.search(r"(\d+) Adam steps .*?\(([\d.]+) min", ckpt["description"])
            done_steps, done_minutes = int(m.group(1)), float(m.group(2))
    t0, step, losses = time.monotonic(), 0, []
    while time.monotonic() - t0 < 60 * args.minutes:
        idx = rng.integers(len(images), size=args.batch)
        t = rng.uniform(0.001, 1.0, size=args.batch)
        ab = np.array([sched(u) for u in t], dtype=np.float32)
        x0 = images[idx]
        eps = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32))
        a, b = torch.from_numpy(ab[:, 0])[:, None, None, None], torch.from_numpy(ab[:, 1])[:, None, None, None]
        loss = ((net(a * x0 + b * eps, torch.from_numpy(t)) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            print(f"step {step}  loss {np.mean(losses[-50:]):.4f}  {time.monotonic() - t0:.0f} s", flush=True)
    minutes = done_minutes + (time.monotonic() - t0) / 60
    step += done_steps
    desc = (f"EpsNet width {args.width}, 6 residual 3x3 layers, zero padding, {step} Adam steps of batch "
            f"{args.batch} ({minutes:.1f} min on 1-2 shared CPU cores) on {Path(args.bank).name}, noise schedule "
            f"{SCHEDULE}, final loss {np.mean(losses[-100:]):.4f}")
    torch.save({"state": net.state_dict(), "optimizer": opt.state_dict(), "width": args.width,
                "channels": int(images.shape[1]), "steps": step, "minutes": minutes, "description": desc},
               args.output)
    print(desc)


def record(args) -> None:
    ckpt = torch.load(args.model)
    net = EpsNet(ckpt["channels"], ckpt["width"])
    net.load_state_dict(ckpt["state"])
    net.eval()

    def eps_fn(x, t, labels):          # x: (B, C, H, W) float64, t: elscli's time in [0, 1]
        with torch.no_grad():
            return net(torch.from_numpy(x).float(), torch.full((len(x),), t)).double().numpy()

    shape = (ckpt["channels"], 32, 32)
    start, _ = sample_streams(range(args.samples), args.seed, shape)   # sample i's own starting noise
    seeds = start.astype(np.float32)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = {"model": ckpt["description"]}
    for name, kw in (("ddpm", dict(sampler="ddim", eta=1.0, grid="uniform", steps=args.ddpm_steps,
                                   noise_seed=args.seed)),
                     ("heun", dict(sampler="heun", grid="edm", steps=args.heun_steps))):
        t0 = time.monotonic()
        ref = elscli.reference.record(eps_fn, seeds, path=out / f"net-{name}.npz", noise_schedule=SCHEDULE,
                                      attrs=attrs, force=True, **kw)
        print(f"{out / f'net-{name}.npz'}: {ref.sampler} eta={ref.eta:g} {ref.grid} grid, {ref.num_steps} steps, "
              f"{ref.evaluations} evaluations, {time.monotonic() - t0:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--bank", required=True)
    t.add_argument("--minutes", type=float, default=8.0)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--init", help="a checkpoint of this script to continue training from")
    t.add_argument("-o", "--output", default="linear-net.pt")
    r = sub.add_parser("record")
    r.add_argument("model")
    r.add_argument("--samples", type=int, default=16)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--ddpm-steps", type=int, default=20)
    r.add_argument("--heun-steps", type=int, default=10)
    r.add_argument("--out-dir", default="refs")
    args = p.parse_args()
    train(args) if args.cmd == "train" else record(args)


if __name__ == "__main__":
    main()
