"""The writer side: what a `kind: command` shard's process reads and writes.

The contract with the runner (issue 15; docs/command.md, docs/python.md) is a set of
environment variables the runner sets for each attempt of a shard:

  SEEDGRID_PARAMS          path of a JSON file: the shard's resolved params
  SEEDGRID_SHARD_ID        the shard's content address
  SEEDGRID_SEED            the shard's seed (an integer)
  SEEDGRID_ATTEMPT         1-based attempt number
  SEEDGRID_OUT             a private scratch dir for this attempt, published with the shard
  SEEDGRID_INPUTS          JSON (inline, or a path to a JSON file) of each need's published files
  SEEDGRID_CHECKPOINT_DIR  kept across attempts of the same shard (a retry resumes from it)

and a set of files the process leaves under SEEDGRID_OUT:

  metrics.json    an object name -> number (scalar metrics)
  metrics.jsonl   lines {"name": ..., "value": ..., "step": ...} (step-wise metrics, curves)
  arrays.h5       the arrays save() wrote (any *.h5 becomes, or is linked from, the shard's file)

Kill safety: the runner may SIGKILL the process at any instant (timeout, memory limit, lost
worker). What is on disk must then still parse: metrics.json is only ever replaced by rename of
a complete, fsynced temporary file; each metrics.jsonl line is one write(2) on an O_APPEND
descriptor, so a line is either whole or absent; arrays.h5 is closed after every save.

Local mode: outside seedgrid (the variables unset), every function raises NotInShardError
saying which variable is missing, unless local mode is on (SEEDGRID_LOCAL=<dir> or
seedgrid.local(dir, ...)), which sets the same variables to paths under <dir> so a script can
be run and debugged by hand exactly as it runs under seedgrid.
"""

import copy
import json
import math
import operator
import os
import pathlib
import re
import signal
import sys
import tempfile
import threading

METRICS_FILE = "metrics.json"
CURVES_FILE = "metrics.jsonl"
ARRAYS_FILE = "arrays.h5"

_VARS = ("SEEDGRID_PARAMS", "SEEDGRID_SHARD_ID", "SEEDGRID_SEED", "SEEDGRID_ATTEMPT",
         "SEEDGRID_OUT", "SEEDGRID_INPUTS", "SEEDGRID_CHECKPOINT_DIR")


class NotInShardError(RuntimeError):
    """A writer-side function was called outside a seedgrid `kind: command` shard."""


# ---- local mode ----

def local(directory="seedgrid-local", params=None, seed=0, shard_id="local", attempt=1,
          inputs=None):
    """Runs this process as if it were a shard, with its files under `directory`.

    Does nothing when the process already runs under seedgrid (any SEEDGRID_* variable of the
    contract is set), so a script may call it unconditionally at its top. Otherwise sets the
    SEEDGRID_* variables (children inherit them): params from `params` (a dict), else from
    <directory>/params.json when it exists, else {}; out dir <directory>/out; checkpoint dir
    <directory>/checkpoint, which persists between local runs as it does between attempts.
    Returns the directory (a resolved pathlib.Path), or None under seedgrid.
    """
    if _under_seedgrid():
        return None
    root = pathlib.Path(directory).resolve()
    out = root / "out"
    ckpt = root / "checkpoint"
    out.mkdir(parents=True, exist_ok=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    params_path = root / "params.json"
    if params is not None:
        _write_atomically(params_path, json.dumps(params, indent=2, sort_keys=True) + "\n")
    elif not params_path.exists():
        _write_atomically(params_path, "{}\n")
    os.environ.update({
        "SEEDGRID_PARAMS": str(params_path),
        "SEEDGRID_SHARD_ID": str(shard_id),
        "SEEDGRID_SEED": str(int(seed)),
        "SEEDGRID_ATTEMPT": str(int(attempt)),
        "SEEDGRID_OUT": str(out),
        "SEEDGRID_INPUTS": json.dumps(inputs if inputs is not None else {}),
        "SEEDGRID_CHECKPOINT_DIR": str(ckpt),
    })
    _params_cache.clear()
    return root


def _under_seedgrid():
    """Whether any variable of the contract is set: then local mode never fills in the rest."""
    return any(os.environ.get(v) for v in _VARS)


def _env(name):
    value = os.environ.get(name)
    if value:
        return value
    directory = os.environ.get("SEEDGRID_LOCAL")
    if directory and not _under_seedgrid():
        local(directory)
        return os.environ[name]
    others = sorted(v for v in _VARS if os.environ.get(v))
    if others:
        raise NotInShardError(
            f"seedgrid: {name} is not set, though {', '.join(others)} are: the process runs "
            f"under a seedgrid whose runner does not provide {name} (docs/python.md lists the "
            f"variables this helper reads)")
    raise NotInShardError(
        f"seedgrid: {name} is not set: this process is not running as a seedgrid "
        f"`kind: command` shard. To run the script by hand, set SEEDGRID_LOCAL=<dir> or call "
        f"seedgrid.local(<dir>, params={{...}}) first (docs/python.md, \"Local mode\").")


def _json_value(name):
    """A variable holding inline JSON or the path of a JSON file."""
    value = _env(name)
    text = value
    if not value.lstrip().startswith(("{", "[")):
        try:
            text = pathlib.Path(value).read_text(encoding="utf-8")
        except OSError as e:
            raise NotInShardError(f"seedgrid: {name}={value}: cannot read it: {e.strerror}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"seedgrid: {name} ({value if text is not value else 'inline'}) is "
                         f"not valid JSON: {e}") from e


def _int_env(name):
    value = _env(name)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"seedgrid: {name}={value!r} is not an integer") from None


# ---- what the shard is ----

_params_cache = {}


def params():
    """The shard's resolved params (a dict, parsed from the JSON file at $SEEDGRID_PARAMS).

    Read once per process; each call returns a fresh deep copy, so callers may modify it.
    """
    path = _env("SEEDGRID_PARAMS")
    if path not in _params_cache:
        _params_cache.clear()
        _params_cache[path] = _json_value("SEEDGRID_PARAMS")
    return copy.deepcopy(_params_cache[path])


def shard_id():
    """The shard's id ($SEEDGRID_SHARD_ID)."""
    return _env("SEEDGRID_SHARD_ID")


def seed():
    """The shard's seed, an int ($SEEDGRID_SEED)."""
    return _int_env("SEEDGRID_SEED")


def attempt():
    """This attempt's number, 1-based ($SEEDGRID_ATTEMPT)."""
    return _int_env("SEEDGRID_ATTEMPT")


def out_dir():
    """This attempt's scratch dir ($SEEDGRID_OUT), a pathlib.Path. What is left there when the
    process exits 0 is published with the shard; other files than metrics and *.h5 go to
    <id>.files/."""
    return pathlib.Path(_env("SEEDGRID_OUT"))


def inputs():
    """Each need's published files ($SEEDGRID_INPUTS, parsed): JSON as the runner wrote it."""
    return _json_value("SEEDGRID_INPUTS")


def checkpoint_dir():
    """A dir kept across attempts of this shard ($SEEDGRID_CHECKPOINT_DIR), created if
    missing, a pathlib.Path. Save a checkpoint there; a retry or a resumed launch after
    preemption finds it and can resume."""
    path = pathlib.Path(_env("SEEDGRID_CHECKPOINT_DIR"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- metrics ----

_lock = threading.Lock()
_curves_fd = {}  # path -> descriptor opened O_APPEND


def _number(name, value):
    if isinstance(value, (bool, str, bytes)) or not hasattr(type(value), "__float__"):
        raise TypeError(f"seedgrid.log({name!r}): the value must be a number, "
                        f"got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"seedgrid.log({name!r}): the value is {number}: metrics are finite "
                         f"numbers (JSON has no NaN or infinity)")
    # Integers stay integers in the files when they are exact.
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(value, int) or kind in ("i", "u"):
        return int(value)
    return number


def log(name, value, step=None):
    """Records a metric.

    Without `step`: a scalar metric, `name` -> `value` in $SEEDGRID_OUT/metrics.json (a later
    call with the same name replaces the value). The file is rewritten whole and renamed into
    place, so it is always a complete JSON object, even if the process is killed meanwhile.

    With `step` (an int): one point of a curve, a line {"name", "value", "step"} appended to
    $SEEDGRID_OUT/metrics.jsonl with a single write, so a killed process leaves whole lines.

    `value`: anything float() takes that is a number (int, float, numpy scalar, a one-element
    torch tensor); NaN and infinity are refused (ValueError): JSON cannot hold them.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"seedgrid.log: the name must be a non-empty string, got {name!r}")
    number = _number(name, value)
    out = out_dir()
    if step is None:
        _set_scalar(out / METRICS_FILE, name, number)
        return
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"seedgrid.log({name!r}): step must be an int, got "
                        f"{type(step).__name__}") from None
    line = json.dumps({"name": name, "value": number, "step": step}) + "\n"
    _append(out / CURVES_FILE, line.encode("utf-8"))


def _set_scalar(path, name, number):
    with _lock:
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            metrics = {}
        except json.JSONDecodeError as e:
            raise ValueError(f"seedgrid.log: {path} is not valid JSON ({e}): it was not written "
                             f"by seedgrid.log") from e
        if not isinstance(metrics, dict):
            raise ValueError(f"seedgrid.log: {path} holds {type(metrics).__name__}, not an object")
        metrics[name] = number
        _write_atomically(path, json.dumps(metrics, indent=1, sort_keys=True) + "\n")


def _append(path, data):
    key = str(path)
    with _lock:
        fd = _curves_fd.get(key)
        if fd is None:
            fd = os.open(key, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            _curves_fd[key] = fd
        written = os.write(fd, data)
        if written != len(data):  # a full disk: say so rather than leave half a line unnoticed
            raise OSError(f"seedgrid.log: short write to {path} ({written} of {len(data)} bytes)")


def _write_atomically(path, text):
    """Writes `text` to a temporary file beside `path`, fsyncs it, renames it over `path`."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---- arrays ----

_NAME = re.compile(r"^[^/]+(/[^/]+)*$")


def save(name, array, **create_dataset_kwargs):
    """Saves `array` as the HDF5 dataset `name` in $SEEDGRID_OUT/arrays.h5.

    `name` may be nested ("train/loss", "dW/layer0/q"): the groups are created. Saving a name
    again replaces the dataset. `array`: anything numpy.asarray takes (a torch tensor: pass
    tensor.detach().cpu().numpy()); str arrays are stored as UTF-8 strings. Extra keyword
    arguments go to h5py's create_dataset (e.g. compression="gzip"). The file is closed after
    every call, so what was saved survives the process being killed. Returns the file's path.
    """
    import h5py
    import numpy as np

    if not isinstance(name, str) or not _NAME.match(name) or any(
            part in (".", "..") for part in name.split("/")):
        raise ValueError(f"seedgrid.save: bad dataset name {name!r}: use non-empty parts "
                         f"joined by '/' (e.g. 'train/loss'), no leading or trailing '/'")
    data = np.asarray(array)
    if data.dtype.kind == "U":
        data = data.astype(object)
        create_dataset_kwargs.setdefault("dtype", h5py.string_dtype())
    elif data.dtype.kind == "O":
        raise TypeError(f"seedgrid.save({name!r}): an object array cannot be stored in HDF5; "
                        f"pass numbers or strings")
    path = out_dir() / ARRAYS_FILE
    with _lock, h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        f.create_dataset(name, data=data, **create_dataset_kwargs)
    return path


# ---- preemption ----

_preempted = threading.Event()
_installed = False
_previous_handler = None


def _on_sigterm(signum, frame):
    _preempted.set()
    if callable(_previous_handler):
        _previous_handler(signum, frame)


def handle_preemption():
    """Installs the SIGTERM handler (idempotent): from then on SIGTERM sets the flag that
    preempted() returns instead of ending the process. Call it early, before the work starts
    (seedgrid forwards SIGTERM when it preempts or times out a shard, then kills after the
    grace period). Must be called from the main thread (Python's signal rule). A handler
    installed before (a Python function) still runs after the flag is set."""
    global _installed, _previous_handler
    if _installed:
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("seedgrid.handle_preemption: call it from the main thread first "
                           "(Python installs signal handlers only there)")
    _previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True


def preempted():
    """True once SIGTERM has arrived: save a checkpoint to checkpoint_dir(), then exit (see
    exit_preempted()). The first call installs the handler (handle_preemption())."""
    handle_preemption()
    return _preempted.is_set()


def exit_preempted():
    """Ends the process as an unhandled SIGTERM would have: flushes stdout and stderr, restores
    the default action and sends SIGTERM to itself. seedgrid then sees the same outcome as for
    a process that did not handle the signal (a preempted attempt, not charged; a timeout when
    it was a timeout), never a success. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("seedgrid.exit_preempted: call it from the main thread (Python sets "
                           "signal actions only there)")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()  # not reached: the signal ends the process
