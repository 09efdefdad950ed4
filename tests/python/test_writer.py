"""The Python helper's writer side (python/seedgrid/_shard.py) against the `kind: command`
environment contract: real files, real child processes, real signals."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import unittest

import h5py
import numpy as np

from helper import SHARD_VARS, ShardEnvTest

import seedgrid


def run_child(test, code, env=None, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          env=env or test.child_env(), capture_output=True, text=True, timeout=60,
                          **kw)


def start_child(test, code, env=None):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            env=env or test.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class Context(ShardEnvTest):
    def test_params_ids_seed_attempt_and_inputs_come_from_the_environment(self):
        self.assertEqual(seedgrid.params(), self.params)
        self.assertEqual(seedgrid.shard_id(), "3fa9c0de")
        self.assertEqual(seedgrid.seed(), 7)
        self.assertEqual(seedgrid.attempt(), 2)
        self.assertEqual(str(seedgrid.out_dir()), self.out)
        self.assertEqual(seedgrid.inputs(), {"base": {"dir": "/x/base.files", "h5": "/x/base.h5"}})

    def test_params_is_a_copy_the_caller_may_change(self):
        p = seedgrid.params()
        p["model"]["width"] = 1
        self.assertEqual(seedgrid.params()["model"]["width"], 64)

    def test_a_new_params_file_is_read(self):
        self.assertEqual(seedgrid.params()["lr"], 3e-4)
        other = os.path.join(self.dir, "other.json")
        with open(other, "w") as f:
            json.dump({"lr": 0.1}, f)
        os.environ["SEEDGRID_PARAMS"] = other
        self.assertEqual(seedgrid.params(), {"lr": 0.1})

    def test_inputs_may_be_a_path_to_a_json_file(self):
        path = os.path.join(self.dir, "inputs.json")
        with open(path, "w") as f:
            json.dump({"base": {"dir": "/y"}}, f)
        os.environ["SEEDGRID_INPUTS"] = path
        self.assertEqual(seedgrid.inputs(), {"base": {"dir": "/y"}})

    def test_bad_values_are_named(self):
        os.environ["SEEDGRID_SEED"] = "seven"
        with self.assertRaisesRegex(ValueError, "SEEDGRID_SEED='seven' is not an integer"):
            seedgrid.seed()
        with open(os.environ["SEEDGRID_PARAMS"], "w") as f:
            f.write("{not json")
        with self.assertRaisesRegex(ValueError,
                                    "SEEDGRID_PARAMS .*params.json.* is not valid JSON"):
            seedgrid.params()

    def test_checkpoint_dir_is_the_variable_and_is_created(self):
        self.assertFalse(os.path.exists(self.ckpt))
        d = seedgrid.checkpoint_dir()
        self.assertEqual(str(d), self.ckpt)
        self.assertTrue(os.path.isdir(self.ckpt))
        (d / "step.txt").write_text("5")
        # The next attempt: a fresh scratch dir, the same checkpoint dir.
        os.environ["SEEDGRID_OUT"] = os.path.join(self.dir, "scratch-attempt-3")
        os.environ["SEEDGRID_ATTEMPT"] = "3"
        self.assertEqual((seedgrid.checkpoint_dir() / "step.txt").read_text(), "5")


class OutsideSeedgrid(ShardEnvTest):
    def test_every_function_names_the_missing_variable_and_local_mode(self):
        for k in SHARD_VARS:
            os.environ.pop(k, None)
        calls = {
            "SEEDGRID_PARAMS": seedgrid.params, "SEEDGRID_SHARD_ID": seedgrid.shard_id,
            "SEEDGRID_SEED": seedgrid.seed, "SEEDGRID_ATTEMPT": seedgrid.attempt,
            "SEEDGRID_OUT": seedgrid.out_dir, "SEEDGRID_INPUTS": seedgrid.inputs,
            "SEEDGRID_CHECKPOINT_DIR": seedgrid.checkpoint_dir,
        }
        calls_out = {"log": lambda: seedgrid.log("x", 1.0), "save": lambda: seedgrid.save("x", [1])}
        for var, call in list(calls.items()) + [("SEEDGRID_OUT", c) for c in calls_out.values()]:
            with self.assertRaises(seedgrid.NotInShardError) as cm:
                call()
            msg = str(cm.exception)
            self.assertIn(f"{var} is not set", msg)
            self.assertIn("not running as a seedgrid `kind: command` shard", msg)
            self.assertIn("SEEDGRID_LOCAL", msg)

    def test_a_partial_environment_names_what_is_missing(self):
        del os.environ["SEEDGRID_CHECKPOINT_DIR"]
        os.environ["SEEDGRID_LOCAL"] = os.path.join(self.dir, "never")  # does not fill it in
        with self.assertRaisesRegex(seedgrid.NotInShardError,
                                    "SEEDGRID_CHECKPOINT_DIR is not set, though .*SEEDGRID_OUT"):
            seedgrid.checkpoint_dir()
        self.assertFalse(os.path.exists(os.path.join(self.dir, "never")))

    def test_SEEDGRID_LOCAL_runs_a_script_by_hand(self):
        env = self.child_env()
        for k in SHARD_VARS:
            env.pop(k, None)
        local = os.path.join(self.dir, "by-hand")
        env["SEEDGRID_LOCAL"] = local
        script = """
            import seedgrid
            print(seedgrid.params(), seedgrid.seed(), seedgrid.attempt(), seedgrid.shard_id())
            seedgrid.log("acc", 0.5)
            seedgrid.save("w", [1, 2, 3])
            (seedgrid.checkpoint_dir() / "ck").write_text("x")
        """
        p = run_child(self, script, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(), ["{}", "0", "1", "local"])
        with open(os.path.join(local, "out", "metrics.json")) as f:
            self.assertEqual(json.load(f), {"acc": 0.5})
        with h5py.File(os.path.join(local, "out", "arrays.h5")) as f:
            self.assertEqual(f["w"][()].tolist(), [1, 2, 3])
        self.assertTrue(os.path.exists(os.path.join(local, "checkpoint", "ck")))
        # Params by hand: <dir>/params.json.
        with open(os.path.join(local, "params.json"), "w") as f:
            json.dump({"lr": 0.5}, f)
        p = run_child(self, "import seedgrid; print(seedgrid.params()['lr'])", env=env)
        self.assertEqual(p.stdout.strip(), "0.5", p.stderr)

    def test_local_sets_up_a_shard_and_is_a_no_op_under_seedgrid(self):
        self.assertIsNone(seedgrid.local(os.path.join(self.dir, "unused"), params={"lr": 9}))
        self.assertEqual(seedgrid.params(), self.params)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "unused")))
        for k in SHARD_VARS:
            os.environ.pop(k, None)
        root = seedgrid.local(os.path.join(self.dir, "dbg"), params={"lr": 9}, seed=3)
        self.assertEqual(seedgrid.params(), {"lr": 9})
        self.assertEqual(seedgrid.seed(), 3)
        self.assertEqual(seedgrid.out_dir(), root / "out")
        self.assertEqual(seedgrid.checkpoint_dir(), root / "checkpoint")
        self.assertEqual(seedgrid.inputs(), {})


class Metrics(ShardEnvTest):
    def read_metrics(self):
        with open(os.path.join(self.out, "metrics.json")) as f:
            return json.load(f)

    def read_curves(self):
        with open(os.path.join(self.out, "metrics.jsonl")) as f:
            return [json.loads(line) for line in f]

    def test_scalars_go_to_metrics_json_and_a_name_logged_again_is_replaced(self):
        seedgrid.log("accuracy", 0.5)
        seedgrid.log("tokens", 1024)
        seedgrid.log("loss", np.float32(0.25))
        seedgrid.log("count", np.int64(3))
        seedgrid.log("accuracy", 0.75)
        m = self.read_metrics()
        self.assertEqual(m, {"accuracy": 0.75, "tokens": 1024, "loss": 0.25, "count": 3})
        self.assertIsInstance(m["tokens"], int)
        self.assertFalse(os.path.exists(os.path.join(self.out, "metrics.jsonl")))

    def test_metrics_json_is_replaced_by_rename_and_leaves_no_temporary(self):
        seedgrid.log("a", 1.0)
        inode = os.stat(os.path.join(self.out, "metrics.json")).st_ino
        seedgrid.log("b", 2.0)
        self.assertNotEqual(os.stat(os.path.join(self.out, "metrics.json")).st_ino, inode)
        self.assertEqual(sorted(os.listdir(self.out)), ["metrics.json"])

    def test_steps_go_to_metrics_jsonl_one_line_each(self):
        for step in range(3):
            seedgrid.log("loss", 1.0 / (step + 1), step=step)
        seedgrid.log("lr", 1e-3, step=np.int64(2))
        self.assertEqual(self.read_curves(), [
            {"name": "loss", "value": 1.0, "step": 0}, {"name": "loss", "value": 0.5, "step": 1},
            {"name": "loss", "value": 1.0 / 3, "step": 2},
            {"name": "lr", "value": 1e-3, "step": 2}])
        self.assertFalse(os.path.exists(os.path.join(self.out, "metrics.json")))

    def test_values_that_json_cannot_hold_are_refused(self):
        for bad, err in ((float("nan"), ValueError), (float("inf"), ValueError),
                         ("0.5", TypeError), (True, TypeError), (None, TypeError),
                         ([1], TypeError)):
            with self.assertRaises(err, msg=repr(bad)):
                seedgrid.log("x", bad)
        with self.assertRaisesRegex(TypeError, "step must be an int"):
            seedgrid.log("x", 1.0, step=1.5)
        with self.assertRaisesRegex(TypeError, "non-empty string"):
            seedgrid.log("", 1.0)
        self.assertEqual(os.listdir(self.out), [])

    def test_a_writer_killed_at_any_instant_leaves_files_that_parse(self):
        # A child rewrites a ~10 KB metrics.json and appends curve lines as fast as it can,
        # printing each step once log() has returned; it is SIGKILLed at a random moment.
        # A truncate-then-write metrics.json, or a buffered jsonl, fails this.
        script = """
            import seedgrid, sys
            names = [f"metric_{i:04d}" for i in range(400)]
            for step in range(10**9):
                seedgrid.log(names[step % 400], step * 1.5)
                seedgrid.log("loss", step * 0.5, step=step)
                print(step, flush=True)
        """
        rng = random.Random(15)
        for trial in range(8):
            for name in os.listdir(self.out):
                os.unlink(os.path.join(self.out, name))
            child = start_child(self, script)
            target = rng.randrange(50, 600)
            last = -1
            for line in child.stdout:
                last = int(line)
                if last >= target:
                    break
            child.kill()
            child.communicate()
            self.assertGreaterEqual(last, target, "the child stopped early")
            m = self.read_metrics()  # parses: never empty, never half-written
            self.assertGreaterEqual(len(m), min(last + 1, 400))
            with open(os.path.join(self.out, "metrics.jsonl")) as f:
                text = f.read()
            self.assertTrue(text.endswith("\n"))
            steps = [json.loads(line)["step"] for line in text.splitlines()]
            # Every line log() returned from is on disk, in order.
            self.assertEqual(steps[:last + 1], list(range(last + 1)))


class Arrays(ShardEnvTest):
    def test_nested_names_dtypes_and_replacement(self):
        path = seedgrid.save("train/loss", np.arange(5, dtype=np.float32))
        self.assertEqual(str(path), os.path.join(self.out, "arrays.h5"))
        seedgrid.save("dW/layer0/q", np.ones((2, 3), dtype=np.int64))
        seedgrid.save("scalar", 2.5)
        seedgrid.save("labels", ["cat", "dog"])
        seedgrid.save("big", np.zeros(1000), compression="gzip")
        seedgrid.save("train/loss", np.arange(3, dtype=np.float64))  # replaces
        with h5py.File(path, "r") as f:
            self.assertEqual(f["train/loss"][()].tolist(), [0.0, 1.0, 2.0])
            self.assertEqual(f["train/loss"].dtype, np.float64)
            self.assertEqual(f["dW/layer0/q"].shape, (2, 3))
            self.assertEqual(f["dW/layer0/q"].dtype, np.int64)
            self.assertEqual(f["scalar"][()], 2.5)
            self.assertEqual([s.decode() for s in f["labels"][()]], ["cat", "dog"])
            self.assertEqual(f["big"].compression, "gzip")

    def test_bad_names_and_objects_are_refused(self):
        for name in ("", "/abs", "trail/", "a//b", "a/../b", ".", 3):
            with self.assertRaises(ValueError, msg=repr(name)):
                seedgrid.save(name, [1])
        with self.assertRaisesRegex(TypeError, "object array"):
            seedgrid.save("x", np.array([{}, 1], dtype=object))

    def test_what_was_saved_survives_a_kill(self):
        child = start_child(self, """
            import seedgrid, time
            seedgrid.save("a/b", [1.0, 2.0, 3.0])
            print("saved", flush=True)
            time.sleep(60)
        """)
        self.assertEqual(child.stdout.readline().strip(), "saved")
        child.kill()
        child.communicate()
        with h5py.File(os.path.join(self.out, "arrays.h5"), "r") as f:
            self.assertEqual(f["a/b"][()].tolist(), [1.0, 2.0, 3.0])


class Preemption(ShardEnvTest):
    def test_sigterm_sets_the_flag(self):
        p = run_child(self, """
            import os, signal, seedgrid
            print(seedgrid.preempted())          # installs the handler
            os.kill(os.getpid(), signal.SIGTERM)
            print(seedgrid.preempted())
        """)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(), ["False", "True"])

    def test_importing_installs_nothing(self):
        p = run_child(self, """
            import os, signal, seedgrid
            os.kill(os.getpid(), signal.SIGTERM)
            import time; time.sleep(5)
        """)
        self.assertEqual(p.returncode, -signal.SIGTERM)

    def test_a_handler_installed_before_still_runs(self):
        p = run_child(self, """
            import os, signal, seedgrid
            signal.signal(signal.SIGTERM, lambda s, f: print("mine", flush=True))
            seedgrid.handle_preemption()
            os.kill(os.getpid(), signal.SIGTERM)
            print(seedgrid.preempted())
        """)
        self.assertEqual(p.stdout.split(), ["mine", "True"], p.stderr)

    def test_only_the_main_thread_may_install_it(self):
        p = run_child(self, """
            import threading, seedgrid
            err = []
            def f():
                try:
                    seedgrid.handle_preemption()
                except RuntimeError as e:
                    err.append(str(e))
            t = threading.Thread(target=f); t.start(); t.join()
            print(err[0])
        """)
        self.assertIn("call it from the main thread", p.stdout, p.stderr)

    def test_a_preempted_loop_checkpoints_exits_by_sigterm_and_the_next_attempt_resumes(self):
        train = """
            import json, seedgrid, time
            seedgrid.handle_preemption()
            ck = seedgrid.checkpoint_dir() / "state.json"
            step = json.loads(ck.read_text())["step"] if ck.exists() else 0
            print("start", step, flush=True)
            while step < 40:
                if seedgrid.preempted():
                    ck.write_text(json.dumps({"step": step}))
                    seedgrid.exit_preempted()
                seedgrid.log("loss", 1.0 / (step + 1), step=step)
                step += 1
                if step == 10:
                    print("ready", flush=True)
                    while not seedgrid.preempted():   # a long step, preempted meanwhile
                        time.sleep(0.02)
            seedgrid.log("final_step", step)
        """
        child = start_child(self, train)
        self.assertEqual(child.stdout.readline().split(), ["start", "0"])
        self.assertEqual(child.stdout.readline().strip(), "ready")
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)
        # Ended by SIGTERM, as an unhandled signal would have: never a success.
        self.assertEqual(child.returncode, -signal.SIGTERM)
        with open(os.path.join(self.ckpt, "state.json")) as f:
            self.assertEqual(json.load(f), {"step": 10})
        self.assertFalse(os.path.exists(os.path.join(self.out, "metrics.json")))
        # Attempt 3: a fresh scratch dir, the same checkpoint dir.
        env = self.child_env()
        env["SEEDGRID_OUT"] = os.path.join(self.dir, "scratch-attempt-3")
        env["SEEDGRID_ATTEMPT"] = "3"
        os.makedirs(env["SEEDGRID_OUT"])
        p = run_child(self, train.replace("while not seedgrid.preempted():", "if False:"), env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split()[:2], ["start", "10"])
        with open(os.path.join(env["SEEDGRID_OUT"], "metrics.json")) as f:
            self.assertEqual(json.load(f), {"final_step": 40})
        with open(os.path.join(env["SEEDGRID_OUT"], "metrics.jsonl")) as f:
            self.assertEqual([json.loads(l)["step"] for l in f], list(range(10, 40)))


if __name__ == "__main__":
    unittest.main()
