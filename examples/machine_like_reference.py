"""Run a machine through exactly the process of a network's reference trajectory (not run by the tests).

Same seeds, same time grid, same noise schedule, same sampler (ddim with the network's eta, euler or heun) and,
for a stochastic sampler, the very noise the network received (the reference's ``noise`` dataset).  The
machine's trajectory is written as a reference file, which ``elscli compare`` reads like a run::

    python examples/machine_like_reference.py refs/net-heun.npz --bank mnist1k.h5 --machine bbels \\
        --schedule bbels-heun.json -o bbels-heun.npz
    python examples/machine_like_reference.py refs/net-heun.npz --bank mnist1k.h5 --machine is -o is-heun.npz
    elscli compare refs/net-heun.npz bbels-heun.npz --baseline is-heun.npz
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import elscli
import elscli.reference
from elscli.noise import get_noise_schedule
from elscli.schedule import LocalitySchedule, load_schedule


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference")
    p.add_argument("--bank", required=True)
    p.add_argument("--machine", default="bbels")
    p.add_argument("--schedule", help="locality schedule (JSON, paper:NAME or an integer); not for is")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()

    ref = elscli.reference.read(args.reference, load_trajectories=False)
    bank = elscli.Bank.open(args.bank)
    sched = get_noise_schedule(ref.schedule)
    sizes = {}
    if args.machine != "is":
        loc: LocalitySchedule = load_schedule(args.schedule)
        sizes = {float(t): int(P) for t, P in zip(ref.times[:-1], loc.for_grid(ref.times))}

    def eps_fn(x, t, labels):      # the machine as a noise predictor: eps = (x - a x0_hat) / b
        a, b = sched(t)
        x0 = elscli.denoise(args.machine, x, t, bank, sizes.get(float(t)), threads=args.threads,
                            noise_schedule=ref.schedule)
        return (x - a * x0) / b

    t0 = time.monotonic()
    out = elscli.reference.record(eps_fn, ref.seeds, ref.times, labels=ref.labels, path=args.output,
                                  noise_schedule=ref.schedule, sampler=ref.sampler, eta=ref.eta,
                                  noise=ref.require_noise() if ref.stochastic else None, force=True,
                                  attrs={"model": f"elscli {args.machine} over {args.bank}, locality "
                                                  f"{args.schedule or '-'}, following {args.reference}"})
    print(f"wrote {args.output}: {args.machine}, {out.sampler} eta={out.eta:g} on the {out.grid} grid "
          f"({out.evaluations} evaluations), {out.num_samples} samples, {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
