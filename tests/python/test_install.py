"""The Python helper is importable with no install step and installs with pip from the
checkout, offline (Debian's python3-setuptools builds it; no index is reached)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from helper import PYTHON_DIR, REPO


class Install(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="seedgrid-pip-")
        self.dir = self._tmp.name
        # pip builds in the source tree (build/, *.egg-info): build from a copy, so the
        # checkout stays clean and parallel runs do not share a build dir.
        self.src = os.path.join(self.dir, "src")
        shutil.copytree(PYTHON_DIR, self.src,
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
        self.env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                        PYTHONDONTWRITEBYTECODE="1")

    def tearDown(self):
        self._tmp.cleanup()

    def run_ok(self, argv, env=None, cwd=None):
        p = subprocess.run(argv, env=env or self.env, cwd=cwd or self.dir, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(p.returncode, 0, f"{argv}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p.stdout

    def import_from(self, python, env):
        """Where `import seedgrid` resolves, and the names it has, run from an unrelated cwd."""
        out = self.run_ok([python, "-c", "import seedgrid, inspect; print(seedgrid.__file__); "
                           "print(seedgrid.__version__); "
                           "print(all(callable(getattr(seedgrid, n)) for n in ("
                           "'params', 'log', 'save', 'checkpoint_dir', 'preempted', 'load', "
                           "'results')))"], env=env)
        return out.split()

    def test_importable_with_no_install_step(self):
        env = dict(self.env, PYTHONPATH=os.path.join(REPO, "python"))
        path, version, ok = self.import_from(sys.executable, env)
        self.assertEqual(path, os.path.join(REPO, "python", "seedgrid", "__init__.py"))
        self.assertEqual(ok, "True")

    def test_pip_install_target_offline(self):
        target = os.path.join(self.dir, "site")
        self.run_ok([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                     "--target", target, self.src])
        env = dict(self.env, PYTHONPATH=target)
        path, version, ok = self.import_from(sys.executable, env)
        self.assertEqual(path, os.path.join(target, "seedgrid", "__init__.py"))
        self.assertEqual(ok, "True")
        self.assertTrue(os.path.isdir(os.path.join(target, f"seedgrid-{version}.dist-info")))

    def test_pip_install_into_a_venv_offline(self):
        venv = os.path.join(self.dir, "venv")
        # --system-site-packages: numpy and h5py from Debian, as a researcher's venv would see.
        self.run_ok([sys.executable, "-m", "venv", "--system-site-packages", venv])
        py = os.path.join(venv, "bin", "python")
        self.run_ok([py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", self.src])
        path, _, ok = self.import_from(py, self.env)
        self.assertTrue(path.startswith(venv + os.sep), path)
        self.assertEqual(ok, "True")
        out = self.run_ok([py, "-m", "pip", "show", "seedgrid"])
        self.assertIn("Requires: h5py, numpy", out)


if __name__ == "__main__":
    unittest.main()
