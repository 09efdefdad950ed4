"""seedgrid's Python helper (pure Python; numpy and h5py, pandas when present).

Writer side, inside a `kind: command` shard (the runner sets the SEEDGRID_* variables):

    import seedgrid
    p = seedgrid.params()                   # the shard's resolved params
    seedgrid.log("loss", 0.3, step=10)      # a curve point  -> metrics.jsonl
    seedgrid.log("accuracy", 0.91)          # a scalar       -> metrics.json
    seedgrid.save("eval/logits", array)     # an HDF5 dataset -> arrays.h5
    ckpt = seedgrid.checkpoint_dir()        # kept across attempts: resume from it
    if seedgrid.preempted(): ...            # SIGTERM arrived: checkpoint, then exit

Reader side, after (or during) a sweep:

    df = seedgrid.load("runs", "mysweep")   # one row per shard: axes and metrics as columns
    with seedgrid.results("runs", "mysweep") as files:
        for shard_id, f in files.items(): ...

Every function and the environment contract: docs/python.md.
"""

from ._registry import Results, load, results
from ._shard import (ARRAYS_FILE, CURVES_FILE, METRICS_FILE, NotInShardError, attempt,
                     checkpoint_dir, exit_preempted, handle_preemption, inputs, local, log,
                     out_dir, params, preempted, save, seed, shard_id)

__version__ = "0.1.0"

__all__ = [
    "ARRAYS_FILE", "CURVES_FILE", "METRICS_FILE", "NotInShardError", "Results", "attempt",
    "checkpoint_dir", "exit_preempted", "handle_preemption", "inputs", "load", "local", "log",
    "out_dir", "params", "preempted", "results", "save", "seed", "shard_id",
]
