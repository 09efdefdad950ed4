"""The reader side: a finished (or running) sweep's shards and files, from its registry.

Reads the SQLite registry (runs/registry.sqlite) with the standard library's sqlite3, opened
read-only (URI mode=ro), so it can run beside a `seedgrid run` that is writing it and never
changes the file. The schema is core/registry.h's (version 5): the `shards` view (one row per
(sweep, shard): id, stage, stage_index, kind, seed, axes JSON, status, attempts, artifact,
error, ...), `metrics(shard, name, value)`, `sweeps(name, ...)`. Artifacts (published HDF5
files) are paths relative to the registry's directory.
"""

import collections.abc
import json
import os
import sqlite3
import urllib.parse

# The columns every row has, in order; axes and metrics follow.
FIXED_COLUMNS = ("id", "stage", "kind", "seed", "status", "attempts", "error")


def _registry_path(registry):
    path = os.fspath(registry)
    if os.path.isdir(path):
        path = os.path.join(path, "registry.sqlite")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"seedgrid: no registry at {path} (pass the registry file, e.g. "
                                f"runs/registry.sqlite, or the directory that holds it)")
    return os.path.abspath(path)


def _connect(path):
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.OperationalError as e:
        raise OSError(f"seedgrid: cannot open the registry {path} read-only: {e}") from e


def _check_sweep(con, path, sweep):
    try:
        known = [r[0] for r in con.execute("SELECT name FROM sweeps ORDER BY name")]
    except sqlite3.DatabaseError as e:
        raise ValueError(f"seedgrid: {path} is not a seedgrid registry: {e}") from e
    if sweep not in known:
        raise KeyError(f"seedgrid: no sweep {sweep!r} in {path}; its sweeps: "
                       f"{', '.join(known) if known else '(none)'}")


def _shard_rows(registry, sweep, stage):
    """(registry path, [row dict with 'axes' and 'artifact'], {shard: {metric: value}})."""
    path = _registry_path(registry)
    con = _connect(path)
    try:
        _check_sweep(con, path, sweep)
        where, args = "s.sweep = ?", [sweep]
        if stage is not None:
            where += " AND s.stage = ?"
            args.append(stage)
        cur = con.execute(
            "SELECT s.id, s.stage, s.kind, s.seed, s.status, s.attempts, s.error, s.axes, "
            f"s.artifact FROM shards s WHERE {where} ORDER BY s.stage_index, s.seq", args)
        rows = []
        for sid, stg, kind, seed, status, attempts, error, axes, artifact in cur:
            rows.append({"id": sid, "stage": stg, "kind": kind, "seed": seed, "status": status,
                         "attempts": attempts, "error": error,
                         "axes": json.loads(axes) if axes else {}, "artifact": artifact})
        metrics = {}
        cur = con.execute(
            "SELECT m.shard, m.name, m.value FROM metrics m JOIN shards s ON s.id = m.shard "
            f"WHERE {where} ORDER BY m.shard, m.name", args)
        for sid, name, value in cur:
            metrics.setdefault(sid, {})[name] = value
    finally:
        con.close()
    if stage is not None and not rows:
        raise KeyError(f"seedgrid: sweep {sweep!r} has no stage {stage!r} in {path}")
    return path, rows, metrics


def _columns(rows, metrics):
    """Column names: the fixed ones, each axis (first-seen order), each metric (sorted). A name
    taken already gets a prefix: "axis.<name>" or "metric.<name>"."""
    taken = set(FIXED_COLUMNS)
    axis_cols = {}
    for row in rows:
        for name in row["axes"]:
            if name not in axis_cols:
                col = name if name not in taken else f"axis.{name}"
                axis_cols[name] = col
                taken.add(col)
    metric_cols = {}
    for name in sorted({n for per in metrics.values() for n in per}):
        col = name if name not in taken else f"metric.{name}"
        metric_cols[name] = col
        taken.add(col)
    return axis_cols, metric_cols


def _record(row, metrics, axis_cols, metric_cols):
    rec = {c: row[c] for c in FIXED_COLUMNS}
    for name, col in axis_cols.items():
        rec[col] = row["axes"].get(name)
    per = metrics.get(row["id"], {})
    for name, col in metric_cols.items():
        rec[col] = per.get(name)
    return rec


def load(registry, sweep, stage=None, as_frame=None):
    """One row per shard of `sweep` (plan order): id, stage, kind, seed, status, attempts,
    error, then every axis as its own column (None where a shard's stage lacks it), then every
    metric as its own column (None, or NaN in a DataFrame, where a shard has no such metric).

    `registry`: the registry file or the directory that holds registry.sqlite (runs/).
    `stage`: only that stage's shards. `as_frame`: None (default) returns a pandas DataFrame
    when pandas can be imported, else a list of dicts; True requires pandas; False always
    returns the list of dicts.
    """
    pandas = None
    if as_frame is not False:
        try:
            import pandas
        except ImportError as e:
            if as_frame:
                raise ImportError("seedgrid.load(as_frame=True) needs pandas (Debian: "
                                  "python3-pandas; pip: pandas)") from e
    _, rows, metrics = _shard_rows(registry, sweep, stage)
    axis_cols, metric_cols = _columns(rows, metrics)
    records = [_record(row, metrics, axis_cols, metric_cols) for row in rows]
    if pandas is None:
        return records
    columns = list(FIXED_COLUMNS) + list(axis_cols.values()) + list(metric_cols.values())
    return pandas.DataFrame.from_records(records, columns=columns)


class Results(collections.abc.Mapping):
    """The published HDF5 files of a sweep's done shards: a read-only mapping from shard id to
    an h5py.File, each opened read-only on first access and kept open until close() (or the
    end of a `with` block). For thousands of shards, open them one at a time from `paths`.

    `paths`: shard id -> absolute path of its file. `rows`: shard id -> the shard's row as
    load() returns it (as a dict), to pick files by axis, seed or metric.
    """

    def __init__(self, paths, rows):
        self.paths = paths
        self.rows = rows
        self._open = {}

    def __getitem__(self, shard):
        f = self._open.get(shard)
        if f is not None:
            return f
        path = self.paths[shard]
        import h5py
        try:
            f = h5py.File(path, "r")
        except FileNotFoundError:
            raise FileNotFoundError(f"seedgrid: shard {shard} is done but its file {path} is "
                                    f"missing (moved or deleted; `seedgrid run` on the spec "
                                    f"again recomputes it)") from None
        self._open[shard] = f
        return f

    def __iter__(self):
        return iter(self.paths)

    def __len__(self):
        return len(self.paths)

    def close(self):
        """Closes every file opened so far."""
        while self._open:
            _, f = self._open.popitem()
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"<seedgrid.Results: {len(self.paths)} shard file(s), {len(self._open)} open>"


def results(registry, sweep, stage=None):
    """The published HDF5 file of each done shard of `sweep` (of `stage` if given), as a
    Results mapping shard id -> h5py.File (opened lazily, read-only). Use it in a `with` block,
    or call close(). Shards that are not done, or done without a file, are not in it.
    """
    path, rows, metrics = _shard_rows(registry, sweep, stage)
    base = os.path.dirname(path)
    axis_cols, metric_cols = _columns(rows, metrics)
    paths, by_id = {}, {}
    for row in rows:
        if row["status"] != "done" or not row["artifact"]:
            continue
        paths[row["id"]] = os.path.normpath(os.path.join(base, row["artifact"]))
        by_id[row["id"]] = _record(row, metrics, axis_cols, metric_cols)
    return Results(paths, by_id)
