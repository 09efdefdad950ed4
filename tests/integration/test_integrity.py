"""Integrity under damage (issue 13, points 1-3): a damaged result file is never taken as a
result, a rebuilt registry is whole, and sweeps that share shards each list all of theirs.
Each test runs the real `seedgrid` binary, which starts itself under mpirun."""
import glob
import os
import shutil
import sqlite3

import h5py

from harness import SweepTest

TWO_STAGES = """
    name: {name}
    stages:
      - {{name: a, kind: chaos, seeds: 3}}
      - {{name: b, kind: chaos, needs: a, params: {{value: 2.0}}}}
"""


class DamagedResults(SweepTest):
    """Point 1: truncated, garbage, empty and another shard's file are each moved aside,
    recorded as an attempt row with the reason, and computed again; the rest is untouched."""

    def damage_and_relaunch(self, damage):
        spec = self.spec("d.yaml", TWO_STAGES.format(name="d"))
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        rows = self.query("select id, artifact from shards where stage='a' order by seed")
        (victim, art), (other, other_art) = rows[0], rows[1]
        path = os.path.join(self.dir, "runs", art)
        damage(path, os.path.join(self.dir, "runs", other_art))
        before = {sid: n for sid, n in self.query("select shard, count(*) from attempts group by shard")}
        p = self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertIn("1 shard file(s) were damaged", p.stdout)
        # Moved aside, never deleted; a whole file published again under the shard's name.
        aside = glob.glob(path + ".damaged-*")
        self.assertEqual(len(aside), 1, os.listdir(os.path.dirname(path)))
        with h5py.File(path, "r") as f:
            self.assertEqual(f.attrs["seedgrid_shard_id"], victim)
            self.assertEqual(len(f["chaos/values"]), 8)
        # The reason is an attempt row; the recomputation is the next one.
        att = self.query("select n, outcome, error from attempts where shard=? order by n", victim)
        self.assertEqual([a[1] for a in att], ["ok", "error", "ok"])
        self.assertIn("damaged", att[1][2])
        self.assertIn(os.path.basename(aside[0]), att[1][2])
        # Nothing else was recomputed.
        after = {sid: n for sid, n in self.query("select shard, count(*) from attempts group by shard")}
        self.assertEqual({k: v for k, v in after.items() if k != victim},
                         {k: v for k, v in before.items() if k != victim})
        self.assertEqual(self.count_done("d"), 6)
        # results.h5 links only readable files of the right shards.
        with h5py.File(os.path.join(self.dir, "runs", "d", "results.h5"), "r") as f:
            for stage in ("a", "b"):
                for sid in f[stage]:
                    self.assertEqual(f[stage][sid].attrs["seedgrid_shard_id"], sid)
        # A third launch finds nothing to do and says nothing about damage.
        p = self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertNotIn("damaged", p.stdout)
        return att[1][2]

    def test_truncated_file(self):
        def truncate(path, _):
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(size // 2)
        self.assertIn("does not open as HDF5", self.damage_and_relaunch(truncate))

    def test_garbage_file(self):
        def garbage(path, _):
            size = os.path.getsize(path)
            with open(path, "wb") as f:
                f.write(os.urandom(size))
        self.damage_and_relaunch(garbage)

    def test_empty_file(self):
        self.assertIn("empty file", self.damage_and_relaunch(lambda path, _: open(path, "w").close()))

    def test_copy_of_another_shards_file(self):
        # cp -p keeps size and mtime: the stamp still changes (inode, ctime).
        reason = self.damage_and_relaunch(lambda path, other: shutil.copy2(other, path))
        self.assertIn("file, not", reason)

    def test_file_missing_a_promised_dataset(self):
        def strip(path, _):
            with h5py.File(path, "r+") as f:
                del f["chaos/values"]
        self.assertIn("dataset chaos/values missing", self.damage_and_relaunch(strip))

    def test_damaged_file_of_an_interrupted_publish_is_not_taken(self):
        # The registry never heard of the file (crash after publish) and the file is damaged:
        # it is not taken as done, and moved aside.
        spec = self.spec("i.yaml", TWO_STAGES.format(name="i"))
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        (sid, art), = self.query("select id, artifact from shards where stage='a' and seed=0")
        con = sqlite3.connect(self.registry)
        con.execute("update shards set status='running', artifact='' where id=?", (sid,))
        con.commit()
        con.close()
        path = os.path.join(self.dir, "runs", art)
        with open(path, "r+b") as f:
            f.truncate(100)
        p = self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertIn("1 shard file(s) were damaged", p.stdout)
        self.assertNotIn("published before an interruption", p.stdout)
        self.assertEqual(len(glob.glob(path + ".damaged-*")), 1)
        self.assertEqual(self.count_done("i"), 6)


class SharedShards(SweepTest):
    """Point 3: membership is many-to-many; a shared shard is computed once."""

    def test_second_sweep_lists_shards_it_shares(self):
        small = self.spec("small.yaml", """
            name: small
            kind: chaos
            seeds: 2
        """)
        big = self.spec("big.yaml", """
            name: big
            kind: chaos
            seeds: 6
        """)
        self.run_seedgrid("run", small, "--workers", "1", check=0)
        p = self.run_seedgrid("run", big, "--workers", "1", check=0)
        self.assertIn("2 shard(s) are shared", p.stdout)
        self.assertEqual(self.count_done("big"), 6)
        self.assertEqual(self.count_done("small"), 2)
        # Computed once: one attempt each, 6 attempts in all.
        self.assertEqual(self.query("select count(*) from attempts")[0][0], 6)
        s = self.run_seedgrid("status", "big", "--registry", self.registry, check=0)
        self.assertIn("(6 shards, 6 done, complete)", s.stdout)
        with h5py.File(os.path.join(self.dir, "runs", "big", "results.h5"), "r") as f:
            self.assertEqual([len(g) for g in f.values()], [6])
            for g in f.values():
                for sid in g:
                    self.assertEqual(g[sid].attrs["seedgrid_shard_id"], sid)
        r = self.run_seedgrid("report", "big", "--registry", self.registry, "--no-figures",
                              "--format", "csv", check=0)
        import csv
        with open(glob.glob(os.path.join(self.dir, "runs", "big", "report", "tables", "*.csv"))[0]) as f:
            rows = list(csv.DictReader(f))
        self.assertTrue(rows)
        for row in rows:  # every metric aggregates the 6 seeds, the 2 shared ones included
            self.assertEqual((row["n"], row["expected"], row["seeds"]), ("6", "6", "0;1;2;3;4;5"), row)
        # Running the small sweep again changes nothing for either.
        self.run_seedgrid("run", small, "--workers", "1", check=0)
        self.assertEqual(self.query("select count(*) from attempts")[0][0], 6)
        self.assertEqual(self.count_done("big"), 6)


class Reindex(SweepTest):
    """Point 2: reindex checks files like a launch, and a rebuilt registry is whole."""

    def test_rebuilt_registry_restores_stage_index_attempts_and_spec(self):
        spec = self.spec("r.yaml", """
            name: r
            stages:
              - {name: a, kind: chaos, seeds: 2, params: {mode: segfault, fail_until_attempt: 2}}
              - {name: b, kind: chaos, needs: a, seeds: 2}
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        ref = self.query("select id, stage, stage_index, attempts, status from shards where sweep='r' order by id")
        self.assertEqual({r[3] for r in ref if r[1] == "a"}, {2})
        os.unlink(self.registry)
        for f in glob.glob(self.registry + "-*"):
            os.unlink(f)
        p = self.run_seedgrid("reindex", "--out", os.path.join(self.dir, "runs"), check=0)
        self.assertIn("sweep spec(s) restored", p.stdout)
        got = self.query("select id, stage, stage_index, attempts, status from shards where sweep='r' order by id")
        self.assertEqual(got, ref)
        # rerun and report work on the rebuilt registry.
        self.run_seedgrid("rerun", "r", "--registry", self.registry, "--failed", "--workers", "1", check=0)
        self.run_seedgrid("report", "r", "--registry", self.registry, "--no-figures", check=0)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "runs", "r", "report", "report.md")))

    def test_reindex_does_not_take_damaged_or_foreign_files(self):
        spec = self.spec("x.yaml", """
            name: x
            kind: chaos
            seeds: 3
        """)
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        rows = self.query("select id, artifact from shards order by seed")
        paths = [os.path.join(self.dir, "runs", a) for _, a in rows]
        with open(paths[0], "r+b") as f:
            f.truncate(64)
        shutil.copy2(paths[2], paths[1])  # shard 1's name, shard 2's content
        # With the registry in place: rows pointing at bad files are not left done.
        p = self.run_seedgrid("reindex", "--out", os.path.join(self.dir, "runs"), check=0)
        self.assertIn("2 damaged file(s) moved aside", p.stdout)
        st = dict(self.query("select id, status from shards"))
        self.assertEqual(st[rows[0][0]], "pending")
        self.assertEqual(st[rows[1][0]], "pending")
        self.assertEqual(st[rows[2][0]], "done")
        errs = self.query("select error from attempts where shard=? order by n", rows[1][0])
        self.assertIn("not " + rows[1][0], errs[-1][0])
        # And from nothing: only the whole file comes back as done.
        os.unlink(self.registry)
        for f in glob.glob(self.registry + "-*"):
            os.unlink(f)
        self.run_seedgrid("reindex", "--out", os.path.join(self.dir, "runs"), check=0)
        self.assertEqual(dict(self.query("select id, status from shards")),
                         {rows[0][0]: "pending", rows[1][0]: "pending", rows[2][0]: "done"})
        # The next launch computes the two again.
        self.run_seedgrid("run", spec, "--workers", "1", check=0)
        self.assertEqual(self.count_done("x"), 3)
