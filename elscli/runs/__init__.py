"""Sample runs: the reverse process over a bank with a machine, written to (and read from) run files.

=====================  =====================================================================================
:mod:`.file`            the run file: schema, :class:`Run` (open, save, describe), the store runs write into
:mod:`.plan`            validating inputs and planning what a run (or shard) computes; seeds and seed files
:mod:`.denoiser`        the ``D(x, t)`` a run hands the sampler: a machine at each step's patch size
:mod:`.execute`         :func:`sample`: the sampling loop, signals, ``RUN.h5.partial`` and resume
:mod:`.merge`           :func:`merge_runs`: the shards of one run into one file
:mod:`.export`          PNG grids, one PNG per sample, NPZ exports
=====================  =====================================================================================

Reproducibility: sample number ``i`` of root seed ``R`` starts from
``numpy.random.default_rng([i, R]).standard_normal((C, H, W))``; nothing but its number, the root seed and
the run's parameters enters a sample, so the result does not depend on the batch size, the shards or the
thread count (bitwise), and shards merge into exactly the single-process run.
"""
from ..sample_data import cache_dir, default_bank_path, open_bank
from ..shards import parse_shard, shard_output_path
from .denoiser import MachineDenoiser
from .execute import DEFAULT_BATCH_SIZE, DEFAULT_STOP_GRACE, PARTIAL_SUFFIX, effective_threads, run_plan, sample
from .export import export_run, save_grid_png, to_uint8
from .file import (BASE_DATASETS, FORMAT, IDENTITY_KEYS, PROVENANCE_DATASETS, SCHEMA_VERSION, TRAJECTORY_DATASETS,
                   Run, describe_run, identity, read_finished)
from .merge import merge_runs
from .plan import (DEFAULT_MACHINE, DEFAULT_NUM_SAMPLES, RunPlan, SeedSource, initial_noise, parameter_value, plan_run,
                   read_seed_source)

__all__ = ["BASE_DATASETS", "DEFAULT_BATCH_SIZE", "DEFAULT_MACHINE", "DEFAULT_NUM_SAMPLES", "DEFAULT_STOP_GRACE",
           "FORMAT", "IDENTITY_KEYS", "MachineDenoiser", "PARTIAL_SUFFIX", "PROVENANCE_DATASETS", "Run", "RunPlan",
           "SCHEMA_VERSION", "SeedSource", "TRAJECTORY_DATASETS", "cache_dir", "default_bank_path", "describe_run",
           "effective_threads", "export_run", "identity", "initial_noise", "merge_runs", "open_bank", "parse_shard",
           "parameter_value", "plan_run", "read_finished", "read_seed_source", "run_plan", "sample", "save_grid_png",
           "shard_output_path", "to_uint8"]
