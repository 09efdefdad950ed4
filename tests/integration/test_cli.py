"""The command line as a user meets it (issue 18, section 4), through the real binary: help,
"did you mean", `kinds` (params with type, default and meaning; starter specs), configs that
collapse, overrides of an axis, which registry is used, and the resume hint."""
import json
import os
import signal
import unittest

from harness import SweepTest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

STEER_GRID = """
    name: grid
    stages:
      - name: base
        kind: pretrain
      - name: steer
        kind: lora_steer
        needs: base
        seeds: [0, 1]
        grid: {adapter: [lora, ia3], lora.rank: [1, 4]}
"""


class CommandLine(SweepTest):
    def test_bare_seedgrid_prints_the_help(self):
        p = self.run_seedgrid(check=0)
        for command in ("run", "status", "report", "kinds"):
            self.assertIn(command, p.stdout)
        self.assertIn("Subcommands", p.stdout)

    def test_typos_get_a_did_you_mean(self):
        p = self.run_seedgrid("rnu", "x.yaml", check=2)
        self.assertIn("unknown command 'rnu'; did you mean 'run'?", p.stderr)
        spec = self.spec("c.yaml", "kind: chaos\n")
        p = self.run_seedgrid("run", spec, "--dry-rn", check=2)
        self.assertIn("unknown flag '--dry-rn' of 'seedgrid run'; did you mean '--dry-run'?",
                      p.stderr)
        p = self.run_seedgrid("status", "--regsitry", "x", check=2)
        self.assertIn("did you mean '--registry'?", p.stderr)
        p = self.run_seedgrid("kinds", "lora_stear", check=2)
        self.assertIn("did you mean 'lora_steer'?", p.stderr)
        # Nothing near: CLI11's message alone.
        p = self.run_seedgrid("frobnicate", check=2)
        self.assertNotIn("did you mean", p.stderr)

    def test_kinds_prints_every_param_with_type_default_and_meaning(self):
        kinds = json.loads(self.run_seedgrid("kinds", "--json", check=0).stdout)
        self.assertIn("lora_steer", kinds)
        text = self.run_seedgrid("kinds", check=0).stdout
        for name, kind in kinds.items():
            self.assertIn(f"{name}: {kind['summary']}", text)
            for param in kind["params"]:
                self.assertTrue(param["meaning"], f"{name}: {param['key']} has no meaning")
                self.assertIn(param["key"], text)
        rank = [r for r in kinds["lora_steer"]["params"] if r["key"] == "lora.rank"][0]
        self.assertEqual((rank["type"], rank["default"]), ("integer", "4"))
        line = [l for l in text.splitlines() if l.strip().startswith("lora.rank ")][0]
        self.assertEqual(line.split()[:3], ["lora.rank", "integer", "4"])
        self.assertIn(rank["meaning"], line)

    def test_docs_kinds_md_is_what_kinds_markdown_prints(self):
        p = self.run_seedgrid("kinds", "--markdown", check=0)
        with open(os.path.join(ROOT, "docs", "kinds.md")) as f:
            self.assertEqual(f.read(), p.stdout,
                             "docs/kinds.md is stale: build/seedgrid kinds --markdown > docs/kinds.md")

    def test_every_kinds_starter_spec_passes_a_dry_run(self):
        kinds = json.loads(self.run_seedgrid("kinds", "--json", check=0).stdout)
        self.assertFalse(kinds["tokens"]["starter"])  # the planner adds it: no starter
        for name in kinds:
            with self.subTest(kind=name):
                if not kinds[name]["starter"]:
                    p = self.run_seedgrid("kinds", name, "--yaml", check=2)
                    self.assertIn(f"kinds {name} --yaml: no starter spec: kind {name} is added "
                                  "by the planner", p.stderr)
                    self.assertEqual(p.stdout, "")
                    continue
                yaml = self.run_seedgrid("kinds", name, "--yaml", check=0).stdout
                path = self.spec(f"{name}.yaml", yaml)
                p = self.run_seedgrid("run", path, "--dry-run", check=0)
                self.assertIn(f" {name} ", p.stdout)
        self.run_seedgrid("kinds", "--yaml", check=2)  # which kind?

    def test_configs_that_differ_only_in_params_that_do_not_apply_collapse(self):
        spec = self.spec("grid.yaml", STEER_GRID)
        p = self.run_seedgrid("run", spec, "--dry-run", check=0)
        steer = [l for l in p.stdout.splitlines() if " lora_steer " in l]
        self.assertEqual(len(steer), 2 * 3, p.stdout)  # per seed: lora×1, lora×4, one ia3
        self.assertEqual(len(set(l.split()[0] for l in steer)), len(steer))
        self.assertEqual(len([l for l in steer if "adapter=ia3 lora.rank=null" in l]), 2)
        self.assertIn("2 shard(s) collapsed", p.stdout)
        ia3 = {l.split()[3]: l.split()[0] for l in steer if "adapter=ia3" in l}  # seed -> id
        for seed in ("0", "1"):
            self.assertIn(f"steer seed={seed} adapter=ia3 lora.rank=4 is identical to {ia3[seed]}",
                          p.stdout)

    def test_overriding_a_param_an_axis_sets_is_an_error_naming_the_axis(self):
        spec = self.spec("grid.yaml", STEER_GRID)
        p = self.run_seedgrid("run", spec, "stages.steer.params.lora.rank=8", "--dry-run", check=2)
        self.assertIn("override 'stages.steer.params.lora.rank=8': stage 'steer': param "
                      "'lora.rank' is a grid axis of the stage", p.stderr)
        self.assertIn("stages.steer.grid.lora.rank=[8]", p.stderr)
        p = self.run_seedgrid("run", spec, "stages.steer.grid.lora.rank=[8]", "--dry-run", check=0)
        self.assertIn("lora.rank=8", p.stdout)

    def test_the_registry_used_is_said_and_a_missing_default_is_an_error(self):
        p = self.run_seedgrid("status", check=2)
        default = os.path.join(self.dir, "runs", "registry.sqlite")
        self.assertIn(f"registry: {default} (the default: runs/registry.sqlite under the current "
                      "directory)", p.stderr)
        self.assertIn("no registry at", p.stderr)
        self.run_seedgrid("report", "nothing", check=2)
        spec = self.spec("c.yaml", "name: c\nkind: chaos\n")
        p = self.run_seedgrid("run", spec, "--dry-run", "--registry", "elsewhere.sqlite", check=0)
        self.assertIn("registry: " + os.path.join(self.dir, "elsewhere.sqlite") + " (--registry)",
                      p.stderr)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        p = self.run_seedgrid("status", "c", check=0)
        self.assertIn(f"registry: {self.registry}", p.stderr)
        self.env["SEEDGRID_REGISTRY"] = self.registry
        p = self.run_seedgrid("status", "c", check=0)
        self.assertIn("(SEEDGRID_REGISTRY)", p.stderr)

    def test_the_resume_hint_names_the_spec_by_its_absolute_path(self):
        self.spec("slow.yaml", """
            name: slow
            kind: chaos
            seeds: 4
            params: {sleep_ms: 3000}
        """)
        proc = self.start_seedgrid("run", "slow.yaml", "--workers", "1")  # relative to cwd
        self.wait_for(lambda: self.query("select count(*) from shards where sweep='slow' and "
                                         "status='running'") == [(1,)], what="a running shard")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, out)
        self.assertIn(f"resume with: seedgrid run {os.path.join(self.dir, 'slow.yaml')} ", out)


if __name__ == "__main__":
    unittest.main()
