"""Shared by the Python helper's tests: the checkout's python/ dir on sys.path (the helper is
imported with no install step, as a shard's script would), and a temporary shard environment
with the variables the `kind: command` runner sets."""
import json
import os
import sys
import tempfile
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTHON_DIR = os.path.join(REPO, "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

SHARD_VARS = ("SEEDGRID_PARAMS", "SEEDGRID_SHARD_ID", "SEEDGRID_SEED", "SEEDGRID_ATTEMPT",
              "SEEDGRID_OUT", "SEEDGRID_INPUTS", "SEEDGRID_CHECKPOINT_DIR", "SEEDGRID_LOCAL")


class ShardEnvTest(unittest.TestCase):
    """Each test gets a fresh shard environment in a temporary dir; os.environ is restored."""

    params = {"lr": 3e-4, "model": {"width": 64}, "tags": ["a", "b"]}

    def setUp(self):
        self._saved = {k: os.environ.get(k) for k in SHARD_VARS}
        self._tmp = tempfile.TemporaryDirectory(prefix="seedgrid-py-")
        self.dir = self._tmp.name
        self.out = os.path.join(self.dir, "scratch-attempt-2")
        self.ckpt = os.path.join(self.dir, "ckpt", "shard")  # not created: checkpoint_dir() does
        os.makedirs(self.out)
        params_path = os.path.join(self.dir, "params.json")
        with open(params_path, "w") as f:
            json.dump(self.params, f)
        for k in SHARD_VARS:
            os.environ.pop(k, None)
        self.env = {
            "SEEDGRID_PARAMS": params_path,
            "SEEDGRID_SHARD_ID": "3fa9c0de",
            "SEEDGRID_SEED": "7",
            "SEEDGRID_ATTEMPT": "2",
            "SEEDGRID_OUT": self.out,
            "SEEDGRID_INPUTS": json.dumps({"base": {"dir": "/x/base.files", "h5": "/x/base.h5"}}),
            "SEEDGRID_CHECKPOINT_DIR": self.ckpt,
        }
        os.environ.update(self.env)

    def tearDown(self):
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._tmp.cleanup()

    def child_env(self):
        """The environment for a child Python that imports the helper from the checkout."""
        env = dict(os.environ)
        env["PYTHONPATH"] = PYTHON_DIR
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env
