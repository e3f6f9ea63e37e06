"""The command line itself: parse errors keep the README's contract (one line `imgtool: VERB: ...` on
stderr, exit 1, 125 for run and exec; never CLI11's 105-109 or its two lines), unknown verbs get a
suggestion, global options work after the verb, unknown options before IMAGE are refused, options
after IMAGE get a hint, and every verb's --help shows a usage line and an example.

podman 4.3, for comparison (run on the CI machine):
  podman pul-local x      -> "Error: unrecognized command `podman pul-local`", exit 125
  podman imgaes           -> "... Did you mean this?  images", exit 125
  podman run --bogus IMG  -> "Error: unknown flag: --bogus", exit 125
  podman images --root D  -> works (global options on either side of the verb)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unittest

import harness

FMT = "oci-archive"
IMAGE = "imgtool-test/busybox"


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.images()


def verbs() -> list:
    """The verbs `imgtool --help` lists."""
    res = harness.run(None, "--help", env=harness.base_env(IMGTOOL_ROOT="/nonexistent-imgtool-root"))
    names = []
    in_list = False
    for line in res.out.splitlines():
        if line.startswith("Subcommands:"):
            in_list = True
        elif in_list and line.strip():
            names.append(line.split()[0].rstrip(","))  # "umount, unmount": the name, then aliases
        elif in_list:
            break
    return names


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(os.path.join(harness.TEST_TMP, "work"), exist_ok=True)
        cls.tmp = tempfile.mkdtemp(prefix="cli-", dir=os.path.join(harness.TEST_TMP, "work"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.root = os.path.join(cls.tmp, "store")
        res = harness.run(cls.root, "pull-local", harness.image_path("busybox", FMT))
        assert res.rc == 0, str(res)
        cls.verbs = verbs()

    def bare(self, *args, **kw) -> harness.Result:
        """imgtool ARGS with no --root in front (the store through IMGTOOL_ROOT, which must stay
        unused unless a test says otherwise)."""
        env = harness.base_env(IMGTOOL_ROOT=kw.pop("root", os.path.join(self.tmp, "never-created")))
        return harness.run(None, *args, env=env)

    def assert_one_line(self, res: harness.Result, line: str, rc: int = 1):
        self.assertEqual(res.rc, rc, str(res))
        self.assertEqual(res.out, "", str(res))
        self.assertEqual(res.err, line + "\n", str(res))

    def assert_untouched(self, before: dict):
        self.assertEqual(harness.store_listing(self.root), before)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "never-created")))

    # ---- the verb ----

    def test_unknown_verb_suggests_the_closest(self):
        self.assert_one_line(self.bare("pul-local", "x"),
                             'imgtool: unknown command "pul-local"; did you mean "pull-local"?')
        self.assert_one_line(self.bare("imgaes"), 'imgtool: unknown command "imgaes"; did you mean "images"?')
        self.assert_one_line(self.bare("--debug", "unmout", "/mnt"),
                             'imgtool: unknown command "unmout"; did you mean "unmount"?')  # an alias
        self.assert_one_line(self.bare("frobnicate"), 'imgtool: unknown command "frobnicate"; see imgtool --help')
        self.assert_one_line(self.bare("--root", self.root, "bogus\nline"),
                             'imgtool: unknown command "bogus\\x0aline"; see imgtool --help')

    def test_no_verb_points_at_help(self):
        self.assert_one_line(self.bare(), "imgtool: no command given; see imgtool --help")
        self.assert_one_line(self.bare("--root", self.root), "imgtool: no command given; see imgtool --help")
        self.assert_one_line(self.bare("--bogus"), "imgtool: unknown option --bogus")
        self.assert_one_line(self.bare("--rot", "x"), "imgtool: unknown option --rot; did you mean --root?")
        # Before a verb, the line names the verb all the same (and takes its exit status).
        self.assert_one_line(self.bare("--bogus", "images"), "imgtool: images: unknown option --bogus")
        self.assert_one_line(self.bare("--bogus", "run", IMAGE), "imgtool: run: unknown option --bogus", 125)

    def test_help_and_version_exit_0_on_stdout(self):
        for args in (["--help"], ["-h"], ["run", "--help"], ["images", "-h"], ["--version"]):
            res = self.bare(*args)
            self.assertEqual(res.rc, 0, str(res))
            self.assertEqual(res.err, "", str(res))
            self.assertTrue(res.out.strip(), str(res))
        self.assertTrue(self.bare("--version").out.startswith("imgtool "))

    # ---- global options on either side of the verb ----

    def test_global_options_after_the_verb(self):
        expected = harness.run(self.root, "images", "--format", "json")
        self.assertEqual(expected.rc, 0, str(expected))
        self.assertIn(IMAGE, expected.out)
        for args in (["images", "--root", self.root, "--format", "json"],
                     ["images", "--format", "json", f"--root={self.root}"],
                     ["images", "--debug", "--root", self.root, "--format", "json"],
                     ["--root", "/nonexistent-earlier", "images", "--root", self.root, "--format", "json"]):
            res = self.bare(*args)
            self.assertEqual((res.rc, res.out), (0, expected.out), str(res))
        # run: before IMAGE they are imgtool's, after it the container's.
        res = self.bare("run", "--root", self.root, "--debug", "--rm", IMAGE, "echo", "--root", "x")
        self.assertEqual((res.rc, res.out), (0, "--root x\n"), str(res))
        res = self.bare("exec", "--root", self.root, "nosuch", "true")
        harness.assert_one_error_line(self, res, "exec", "nosuch", rc=125)
        res = self.bare("inspect", IMAGE, "--root", self.root)
        self.assertEqual(res.rc, 0, str(res))

    # ---- unknown options ----

    def test_unknown_options_before_the_operands_are_refused_by_every_verb(self):
        before = harness.store_listing(self.root)
        self.assertIn("run", self.verbs)
        self.assertGreater(len(self.verbs), 15)
        for verb in self.verbs:
            rc = 125 if verb in ("run", "exec") else 1
            with self.subTest(verb=verb):
                res = self.bare(verb, "--bogus-option", IMAGE, "/tmp", "true", root=self.root)
                self.assert_one_line(res, f"imgtool: {verb}: unknown option --bogus-option", rc)
                res = self.bare(verb, "-Z", IMAGE, root=self.root)  # before a missing operand too
                self.assert_one_line(res, f"imgtool: {verb}: unknown option -Z", rc)
        self.assert_untouched(before)
        res = harness.run(self.root, "ps", "-a", "-q")
        self.assertEqual((res.rc, res.out), (0, ""), str(res))

    def test_unknown_option_suggestion_and_run_exit_status(self):
        before = harness.store_listing(self.root)
        self.assert_one_line(harness.run(self.root, "run", "--rmm", IMAGE, "true"),
                             "imgtool: run: unknown option --rmm; did you mean --rm?", 125)
        self.assert_one_line(harness.run(self.root, "run", "-it", "--bogus=1", IMAGE),
                             "imgtool: run: unknown option --bogus=1", 125)
        self.assert_one_line(harness.run(self.root, "run", "-iz", IMAGE),  # one letter of a cluster
                             "imgtool: run: unknown option -z", 125)
        self.assert_one_line(harness.run(self.root, "bundle", "--bogus", IMAGE, os.path.join(self.tmp, "b")),
                             "imgtool: bundle: unknown option --bogus")
        self.assert_one_line(harness.run(self.root, "images", "--formta", "json"),
                             "imgtool: images: unknown option --formta; did you mean --format?")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "b")))
        self.assert_untouched(before)

    def test_other_parse_errors_are_one_line(self):
        cases = [
            (["inspect"], "imgtool: inspect: missing IMAGE (usage: imgtool inspect [OPTIONS] IMAGE...)", 1),
            (["tag", IMAGE], "imgtool: tag: missing NAME (usage: imgtool tag [OPTIONS] IMAGE NAME)", 1),
            (["images", "--format"], "imgtool: images: --format needs a value", 1),
            (["images", "extra"], 'imgtool: images: unexpected argument "extra" (usage: imgtool images [OPTIONS])', 1),
            (["--root"], "imgtool: --root needs a value", 1),
        ]
        for args, line, rc in cases:
            with self.subTest(args=args):
                self.assert_one_line(self.bare(*args), line, rc)
        # CLI11's own messages (validators) keep one line and the verb's status.
        for verb, rc in (("run", 125), ("mount", 1)):
            res = self.bare(verb, "--driver", "zfs", IMAGE, "/tmp")
            harness.assert_one_error_line(self, res, verb, "--driver", "zfs", rc=rc)
        for rc_seen in range(105, 110):
            self.assertNotEqual(self.bare("images", "--format").rc, rc_seen)

    # ---- options after IMAGE ----

    def test_run_options_after_the_image_get_a_hint(self):
        before = harness.store_listing(self.root)
        res = harness.run(self.root, "run", "--rm", IMAGE, "-it", "sh", "-c", "echo a b")
        self.assert_one_line(res, f'imgtool: run: "-it" after the image is taken as the command; put run\'s '
                                  f"options before IMAGE: imgtool --root {self.root} run --rm -it {IMAGE} sh -c 'echo a b'",
                             125)
        res = harness.run(self.root, "run", IMAGE, "-e", "K=V", "--name=x", "env")
        self.assert_one_line(res, f'imgtool: run: "-e" after the image is taken as the command; put run\'s '
                                  f"options before IMAGE: imgtool --root {self.root} run -e K=V --name=x {IMAGE} env",
                             125)
        self.assert_untouched(before)
        # With an entrypoint the words are its arguments, as docker passes them.
        res = harness.run(self.root, "run", "--entrypoint", "/bin/echo", IMAGE, "-it", "--rm")
        self.assertEqual((res.rc, res.out), (0, "-it --rm\n"), str(res))
        # A command word that is no option of run's is the container's to fail on (127, not found).
        res = harness.run(self.root, "run", IMAGE, "-not-an-option")
        self.assertEqual(res.rc, 127, str(res))
        self.assertNotIn("put run's options", res.err)

    def test_exec_options_after_the_container_get_a_hint(self):
        res = harness.run(self.root, "exec", "web", "-it", "sh")
        self.assert_one_line(res, f'imgtool: exec: "-it" after the container is taken as the command; put exec\'s '
                                  f"options before CONTAINER: imgtool --root {self.root} exec -it web sh", 125)

    # ---- help ----

    def test_usage_lines(self):
        expected = {
            "run": "Usage: imgtool run [OPTIONS] IMAGE [COMMAND [ARG...]]",
            "exec": "Usage: imgtool exec [OPTIONS] CONTAINER COMMAND [ARG...]",
            "bundle": "Usage: imgtool bundle [OPTIONS] IMAGE DIR [COMMAND [ARG...]]",
            "unshare": "Usage: imgtool unshare [OPTIONS] [COMMAND [ARG...]]",
            "commit": "Usage: imgtool commit [OPTIONS] CONTAINER [NAME[:TAG]]",
            "inspect": "Usage: imgtool inspect [OPTIONS] IMAGE...",
            "tag": "Usage: imgtool tag [OPTIONS] IMAGE NAME",
            "mount": "Usage: imgtool mount [OPTIONS] IMAGE TARGET",
            "pull-local": "Usage: imgtool pull-local [OPTIONS] SOURCE",
        }
        for verb, line in expected.items():
            with self.subTest(verb=verb):
                res = self.bare(verb, "--help")
                self.assertEqual(res.rc, 0, str(res))
                self.assertIn(line + "\n", res.out)
        self.assertIn("imgtool bundle --rm DIR", self.bare("bundle", "--help").out)

    def test_every_verb_help_ends_with_an_example(self):
        for verb in self.verbs:
            with self.subTest(verb=verb):
                res = self.bare(verb, "--help")
                self.assertEqual((res.rc, res.err), (0, ""), str(res))
                # The last lines: "Example:" or "Examples:", then command lines of this verb.
                tail = res.out.rstrip("\n").split("\n")
                heading = max(i for i, l in enumerate(tail) if re.fullmatch(r"Examples?:", l))
                lines = tail[heading + 1:]
                self.assertTrue(lines, str(res))
                for line in lines:
                    self.assertTrue(line == f"  imgtool {verb}" or line.startswith(f"  imgtool {verb} "), str(res))
                # The global options, documented on each verb.
                self.assertIn("--root", res.out)

    def test_root_help_states_the_defaults(self):
        out = self.bare("--help").out
        self.assertIn("$IMGTOOL_ROOT", out)
        self.assertIn("/var/lib/imgtool", out)
        self.assertIn("~/.local/share/imgtool", out)
        self.assertIn("$XDG_DATA_HOME/imgtool", out)


if __name__ == "__main__":
    unittest.main()
