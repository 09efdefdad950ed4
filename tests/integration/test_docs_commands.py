"""Every seedgrid command shown in README.md and docs/*.md runs (issue 18, section 4).

What counts as shown: each line of a ```bash block whose first word is `seedgrid`,
`build/seedgrid` or `$B` (the README's `B=build/seedgrid`), backslash continuations joined and
the trailing `# comment` dropped. Synopses with placeholders belong in plain ``` blocks. Each
command runs with the built binary in a scratch directory holding the repository's configs/
and examples/, after a small real `steering` sweep (configs/steering.yaml, a few training steps)
that the commands reading a registry read; `3fa9`, the docs' shard id, becomes the id of a
shard that wrote to stdout and stderr. Commands that would train for minutes get `--dry-run` (`submit` gets `--print`: no Slurm
here); the few that cannot run here are in NOT_RUN, each with why. Every command must exit 0."""
import glob
import os
import re
import shlex
import sqlite3
import unittest

from harness import SweepTest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# (pattern on the command's arguments, why it is not run). A pattern that matches no documented
# command fails the test: the list cannot go stale.
NOT_RUN = [
    (r"^serve\b", "a web server that runs until stopped; tests/serve starts and stops one"),
    (r"^tokenize (DIR|models/)", "needs a Hugging Face tokenizer directory; tests/text runs "
                                 "tokenize on real tokenizer files"),
    (r"^status steering-demo$", "the sweep the Slurm example submitted"),
    (r"^submit sweep\.yaml", "the local Slurm cluster walkthrough; tests/e2e runs it"),
    (r"^report (train_sweep|ablation)$", "reports of sweeps this test only dry-runs (they train "
                                         "for minutes)"),
]

# The shorthand spec docs/spec.md shows (its overrides example runs it).
QUICK_YAML = "name: quick\nkind: pretrain\nseeds: 4\nparams: {train: {steps: 50}}\n"


def documented_commands():
    """(file:line, argv after the binary) for every command shown."""
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    for path in files:
        with open(path) as f:
            lines = f.read().split("\n")
        in_bash, pending, start = False, "", 0
        for n, line in enumerate(lines, 1):
            if line.strip().startswith("```"):
                in_bash = not in_bash and line.strip() == "```bash"
                continue
            if not in_bash:
                continue
            if not pending:
                start = n
            pending += line.rstrip("\\").strip() + " "
            if line.endswith("\\"):
                continue
            words, pending = shlex.split(pending, comments=True), ""
            if words and words[0] in ("seedgrid", "build/seedgrid", "$B"):
                yield f"{os.path.relpath(path, ROOT)}:{start}", words[1:]


class DocumentedCommands(SweepTest):
    def setUp(self):
        super().setUp()
        for d in ("configs", "examples"):
            os.symlink(os.path.join(ROOT, d), os.path.join(self.dir, d))
        # configs/steering-text.yaml names GPT-2's tokenizer files under
        # ../build/tests/text/npm (what tests/text/npm_install.sh installs; fixture text_npm).
        npm = os.environ.get("SEEDGRID_TEXT_NPM")
        if npm:
            os.makedirs(os.path.join(self.dir, "build", "tests", "text"))
            os.symlink(npm, os.path.join(self.dir, "build", "tests", "text", "npm"))
        self.spec("quick.yaml", QUICK_YAML)

    def test_every_documented_command_runs(self):
        commands = list(documented_commands())
        self.assertGreater(len(commands), 20)
        # The sweep the registry-reading commands read: steering, a few steps per shard.
        self.run_seedgrid("run", "configs/steering.yaml", "stages.base.params.train.steps=2",
                          "stages.steer.params.train.steps=1", "stages.steer.seeds=[0]",
                          "--workers", "1", check=0, timeout=600)
        # The shard `3fa9` stands for: one that wrote to stdout and stderr, for `logs`.
        spec = self.spec("talk.yaml", "name: talk\nkind: chaos\nparams: {stdout: hi, stderr: ho}\n")
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        con = sqlite3.connect(self.registry)
        shard = con.execute("select id from shards where sweep='talk'").fetchone()
        con.close()
        used = set()
        for where, args in commands:
            text = " ".join(args)
            skip = [i for i, (pattern, _) in enumerate(NOT_RUN) if re.search(pattern, text)]
            used.update(skip)
            if skip:
                continue
            args = [shard[0][:6] if a == "3fa9" else a for a in args]
            if args[0] in ("run", "rerun") and "--dry-run" not in args:
                args.append("--dry-run")
            if args[0] == "submit":
                args.append("--print")
            with self.subTest(command=f"{where}: seedgrid {text}"):
                p = self.run_seedgrid(*args, timeout=300)
                self.assertEqual(p.returncode, 0, f"{where}: seedgrid {' '.join(args)}\n"
                                                  f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        stale = [NOT_RUN[i][0] for i in range(len(NOT_RUN)) if i not in used]
        self.assertEqual(stale, [], "NOT_RUN entries that match no documented command")


if __name__ == "__main__":
    unittest.main()
