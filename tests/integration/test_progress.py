"""The per-layer progress display of `pull-local` and `pull`, seen in a real terminal: imgtool runs in a
tmux pane of a given size (a private server, -L), and the pane's final contents (capture-pane) and
the raw bytes written to it (pipe-pane) are checked: one line per layer fitted to the width, redrawn
in place, ending as a summary of "done" lines; and no escape sequence at all when stderr is a file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import unittest

import harness
import registry
from harness import gen_images

# Four layers of incompressible bytes, of different sizes so that they finish at different times;
# large enough for a few frames (one every 100 ms), small enough to keep the module fast.
LAYER_MIB = (24, 12, 6, 3)
TAG = "imgtool-test/progress:latest"


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.require_tool("tmux")


def build_image(directory: str) -> tuple[str, list[str]]:
    """An OCI archive of LAYER_MIB layers; returns (path, each layer's short blob digest)."""
    layers = []
    for i, mib in enumerate(LAYER_MIB):
        data = os.urandom(mib << 20)
        layers.append(gen_images.Layer([gen_images.f(f"blob{i}", data)], "none", f"progress {i}"))
    img = gen_images.Image(layers, gen_images.runtime(["/bin/sh"]))
    job = gen_images.Job("progress", [TAG], [img], ("oci-archive",))
    path = os.path.join(directory, "progress.oci.tar")
    gen_images.write_tar(path, gen_images.build_oci(job).files)
    shorts = [hashlib.sha256(layer.blob()[1]).hexdigest()[:12] for layer in layers]
    return path, shorts


class Tmux:
    """A private tmux server (-L NAME) running one command in a pane of WIDTH x HEIGHT."""

    def __init__(self, tc: unittest.TestCase, name: str):
        self.tc = tc
        self.socket = f"imgtool-{name}-{os.getpid()}"
        self.dir = harness.scratch_dir(tc, "tmux-")

    def tmux(self, *args, timeout=60) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout,
                              env={k: v for k, v in os.environ.items() if k != "TMUX"})
        self.tc.assertEqual(proc.returncode, 0, f"tmux {args}: {proc.stderr}")
        return proc.stdout

    def run(self, argv: list, width: int, height: int = 20, scrollback: int = 0) -> dict:
        """Runs argv in the pane, stdout to a file and stderr on the terminal. Returns its exit status,
        stdout, the pane's final text (wrapped lines joined) and the raw bytes the pane received."""
        gate, raw, out, rc = (os.path.join(self.dir, n) for n in ("gate", "raw", "out", "rc"))
        for path in (gate, raw, out, rc):
            if os.path.exists(path):
                os.unlink(path)
        # The command waits for the gate, so pipe-pane records from its first byte; it signals the
        # channel when done (a signal sent before the wait is kept by tmux), then stays, so that the
        # pane can be read.
        script = (f"while [ ! -e {shlex.quote(gate)} ]; do sleep 0.01; done; "
                  f"{shlex.join(argv)} >{shlex.quote(out)}; echo $? >{shlex.quote(rc)}; "
                  f"tmux -L {shlex.quote(self.socket)} wait-for -S done; exec sleep 600")
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "sh", "-c", script)
        self.tc.addCleanup(self.kill)
        self.tmux("pipe-pane", "-o", f"cat >{shlex.quote(raw)}")
        open(gate, "w").close()
        self.tmux("wait-for", "done", timeout=120)
        pane = self.tmux("capture-pane", "-p", "-J", "-S", str(-scrollback))
        self.kill()
        with open(rc) as fh, open(out) as fo, open(raw, "rb") as fr:
            return {"rc": int(fh.read()), "out": fo.read(), "pane": pane, "raw": fr.read()}

    def kill(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        # The server leaves its socket behind when killed.
        path = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.socket)
        if os.path.exists(path):
            os.unlink(path)


class ProgressTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(harness.TEST_TMP, "work", f"progress-{os.getpid()}")
        os.makedirs(cls.dir, exist_ok=True)
        cls.image, cls.shorts = build_image(cls.dir)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.dir])

    def check_final_frame(self, res: dict, width: int):
        """The pane holds exactly one line per layer, in the image's order, each in its final state,
        none wider than the terminal, then the `loaded` notice: nothing left of earlier frames."""
        self.assertEqual(res["rc"], 0, res)
        lines = res["pane"].rstrip("\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        n = len(self.shorts)
        self.assertEqual(len(lines), n + 1, res["pane"])
        self.assertRegex(lines[-1], rf"^imgtool: loaded {re.escape(res['out'].strip())} \(")
        for short, line in zip(self.shorts, lines):
            self.assertLessEqual(len(line), width, f"wider than the terminal: {line!r}")
            self.assertTrue(line.startswith(short + " "), f"{short}: {line!r}")
            self.assertRegex(line, rf"^{short} done ")
            self.assertRegex(line, r" (\S+)/\1 100%( |$)")  # all bytes of the blob read
        # Drawn in place: the first frame (all waiting) was written, then overwritten by cursor-up.
        raw = res["raw"]
        self.assertIn(f"\x1b[{n}A".encode(), raw, "never redrawn in place")
        self.assertIn(b"waiting", raw)
        self.assertNotIn(b"waiting", res["pane"].encode())

    def pull_local_in_tmux(self, width: int) -> dict:
        root = harness.new_store(self)
        argv = harness.imgtool_argv(root, "pull-local", "-j", "2", self.image)
        return Tmux(self, f"progress{width}").run(argv, width)

    def test_width_50(self):
        res = self.pull_local_in_tmux(50)
        self.check_final_frame(res, 50)
        self.assertNotIn(b"[=", res["raw"], "no room for a bar at 50 columns")

    def test_width_200(self):
        res = self.pull_local_in_tmux(200)
        self.check_final_frame(res, 200)
        # Wide: the bar, full at the end, and a rate.
        for line in res["pane"].splitlines()[:len(self.shorts)]:
            self.assertRegex(line, r"\[=+\] +\S+/\S+ 100% +[0-9.]+[kMG]?B/s$")

    def test_more_layers_than_rows(self):
        # 200 layers in 10 rows: frames of at most 9 lines (the busy layers, then "+N more: ..."), so
        # cursor-up never goes past the top; the final frame lists all 200 and may scroll.
        path = harness.image_path(harness.image_record("layers200", "oci-archive"))
        argv = harness.imgtool_argv(harness.new_store(self), "pull-local", "-j", "2", path)
        res = Tmux(self, "progress-rows").run(argv, 50, height=10, scrollback=400)
        self.assertEqual(res["rc"], 0, res)
        lines = [line for line in res["pane"].split("\n") if line.strip()]
        self.assertRegex(lines[-1], r"^imgtool: loaded sha256:\S+ \(200 layers unpacked")
        self.assertEqual(len(lines), 201, res["pane"])
        for line in lines[:-1]:
            self.assertLessEqual(len(line), 50, line)
            self.assertRegex(line, r"^[0-9a-f]{12} done +(\S+)/\1 100%")
        ups = [int(n) for n in re.findall(rb"\x1b\[(\d+)A", res["raw"])]
        self.assertTrue(ups, "never redrawn in place")
        self.assertLessEqual(max(ups), 9)

    def test_repull_says_already_exists(self):
        root = harness.new_store(self)
        harness.pull(self, root, self.image)
        argv = harness.imgtool_argv(root, "pull-local", self.image)
        res = Tmux(self, "progress-again").run(argv, 80)
        self.assertEqual(res["rc"], 0, res)
        lines = res["pane"].rstrip().split("\n")
        self.assertEqual(lines[:-1], [f"{s} already exists" for s in self.shorts], res["pane"])

    def test_no_escape_sequences_unless_a_terminal(self):
        # stderr a file: nothing at all on it.
        err_path = os.path.join(harness.scratch_dir(self), "stderr")
        with open(err_path, "wb") as err_file:
            proc = harness.popen(harness.new_store(self), "pull-local", self.image, stderr=err_file)
            out, _ = proc.communicate(timeout=120)
        with open(err_path, "rb") as fh:
            self.assertEqual((proc.returncode, fh.read()), (0, b""))
        # -q on a terminal: nothing on the terminal, the ID on stdout.
        root = harness.new_store(self)
        res = Tmux(self, "progress-q").run(harness.imgtool_argv(root, "pull-local", "-q", self.image), 80)
        self.assertEqual(res["rc"], 0, res)
        self.assertEqual(res["out"], out.decode())
        self.assertNotIn(b"\x1b", res["raw"])
        self.assertEqual(res["pane"].strip(), "")


class RegistryProgressTest(unittest.TestCase):
    """`pull` uses the same display: one tmux run against the test registry."""

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(harness.TEST_TMP, "work", f"progress-reg-{os.getpid()}")
        os.makedirs(cls.dir, exist_ok=True)
        image, cls.shorts = build_image(cls.dir)
        cls.reg = registry.Registry()
        cls.reg.push("oci-archive:" + image, "t/progress:v1")

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        subprocess.run(["rm", "-rf", cls.dir])

    def test_pull_in_tmux(self):
        manifest = json.loads(self.reg.get_manifest("t/progress", "v1").body)
        shorts = [d["digest"].split(":")[1][:12] for d in manifest["layers"]]
        root = harness.new_store(self)
        argv = harness.imgtool_argv(root, "pull", "--tls-verify=false", f"{self.reg.host}/t/progress:v1")
        res = Tmux(self, "progress-pull").run(argv, 60)
        self.assertEqual(res["rc"], 0, res)
        lines = res["pane"].rstrip().split("\n")
        self.assertEqual(len(lines), len(shorts) + 1, res["pane"])
        for short, line in zip(shorts, lines):
            self.assertLessEqual(len(line), 60, line)
            self.assertRegex(line, rf"^{short} done +(?:\[=+\] +)?(\S+)/\1 100%")
        self.assertIn(f"\x1b[{len(shorts)}A".encode(), res["raw"])


if __name__ == "__main__":
    unittest.main()
