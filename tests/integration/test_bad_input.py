"""Hostile specs through the real binary: each is refused with exit code 2 and file:line, fast,
before MPI starts (so these tests need no mpirun of their own)."""
import os
import resource
import time
import unittest

from harness import SweepTest


class BadInput(SweepTest):
    def refused(self, name, content, *extra):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(content)
        start = time.monotonic()
        p = self.run_seedgrid("run", path, "--dry-run", *extra, timeout=60, check=2)
        self.assertNotIn("internal error", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "runs")))
        return p.stderr, time.monotonic() - start

    def test_alias_bomb_is_refused_fast_and_small(self):
        # 10^9 scalars once expanded; the list on line 9 is the first past 10^6 nodes.
        lines = ["kind: chaos", "params:", "  tag:", "    l0: &l0 [" + ", ".join("x" * 10) + "]"]
        for k in range(1, 9):
            lines.append(f"    l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]")
        # chaos's `tag` is a free-form param: without the limit the spec would be valid.
        err, seconds = self.refused("bomb.yaml", ("\n".join(lines) + "\n").encode())
        self.assertIn("bomb.yaml:9: ", err)
        self.assertIn("more than 1000000 nodes", err)
        self.assertLess(seconds, 10, "the launcher's start-up included")
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        self.assertLess(peak_mib, 1024, "peak RSS of a child process, MiB")

    def test_deep_nesting_says_what_and_where(self):
        for depth in (100, 5000):
            with self.subTest(depth=depth):
                text = "kind: chaos\nparams:\n  tag: " + "[" * depth + "1" + "]" * depth + "\n"
                err, _ = self.refused(f"deep{depth}.yaml", text.encode())
                self.assertIn(f"deep{depth}.yaml:3: nesting deeper than 64 levels", err)
                self.assertNotIn("bad file", err)

    def test_invalid_utf8_in_a_grid_value_and_in_params(self):
        text = (b"kind: chaos\n"
                b"grid:\n"
                b"  message: [ok, \"caf\xe9\"]\n"       # line 3: was JSON type_error.316, exit 1
                b"params:\n"
                b"  tag: \"na\xefve \xff\"\n")     # line 5: was silently U+FFFD
        err, _ = self.refused("utf.yaml", text)
        self.assertIn("utf.yaml:3: the string 'caf\\xE9' is not valid UTF-8", err)
        self.assertIn("utf.yaml:5: the string 'na\\xEFve \\xFF' is not valid UTF-8", err)
        self.assertNotIn("type_error", err)


if __name__ == "__main__":
    unittest.main()
