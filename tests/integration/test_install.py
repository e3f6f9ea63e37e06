"""Install and package (issue 17): the man pages generated from docs/man/*.scd cover every verb and
every option `--help` shows, `--version` names the commit, the bash completion completes from the
binary and the store without ever evaluating what the store prints, and `cpack -G DEB` gives a
package that `dpkg -i` installs (and the test removes).

The build tree is found from $IMGTOOL (BUILD/src/imgtool): the pages are BUILD/docs/man/*.1.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import subprocess
import textwrap
import unittest

import harness

BUILD_DIR = os.path.dirname(os.path.dirname(harness.imgtool_binary()))
MAN_DIR = os.path.join(BUILD_DIR, "docs", "man")
COMPLETION = os.path.join(harness.SOURCE_DIR, "tools", "completion", "imgtool.bash")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
IMAGE = "imgtool-test/busybox"

# Verbs whose pages are written ahead of their code (issue 17's `info`, `system df`, `prune`): a
# binary without them yet is fine, a binary with them must match their pages.
PLANNED_PAGES = ["imgtool-info.1", "imgtool-system-df.1", "imgtool-prune.1"]
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "SEE ALSO"]


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()


def imgtool_help(*verb) -> str:
    res = harness.run(None, *verb, "--help", env=harness.base_env(IMGTOOL_ROOT="/nonexistent"))
    if res.rc != 0:
        raise AssertionError(f"--help failed\n{res}")
    return res.out


def subcommands(help_text: str) -> list:
    """[(name, [aliases])] of CLI11's "Subcommands:" section."""
    out, inside = [], False
    for line in help_text.splitlines():
        if line.startswith("Subcommands:"):
            inside = True
            continue
        if inside:
            m = re.match(r"^\s+([a-z][a-z0-9-]*(?:, [a-z][a-z0-9-]*)*)", line)
            if m:
                names = m.group(1).split(", ")
                out.append((names[0], names[1:]))
            elif not line.strip() or not line.startswith(" "):
                inside = False
    return out


def option_names(help_text: str) -> list:
    """Every option name of a help text: indented lines that begin with -x,--long (or -x, --long) or --long."""
    names = []
    for line in help_text.splitlines():
        m = re.match(r"^\s+(-[^\s,]+(?:, ?-[^\s,]+)*)", line)
        if m:
            names += [n.strip() for n in m.group(1).split(",")]
    return names


def page(name: str, follow: bool = True) -> str:
    """A generated page; an alias's page (".so man1/OTHER", as imgtool-unmount.1) read as OTHER."""
    path = os.path.join(MAN_DIR, name)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if follow and text.startswith(".so man1/"):
        return page(text.strip()[len(".so man1/"):], follow=False)
    return text


def is_alias_page(name: str) -> bool:
    return page(name, follow=False).startswith(".so ")


def page_section(roff: str, title: str) -> str:
    m = re.search(r'^\.SH "?' + re.escape(title) + r'"?\s*$(.*?)(?=^\.SH |\Z)', roff, re.M | re.S)
    return m.group(1) if m else ""


def documented(roff: str, option: str) -> bool:
    """The option appears in bold (scdoc's *--opt*) in the page's OPTIONS or SYNOPSIS."""
    text = page_section(roff, "OPTIONS") + page_section(roff, "SYNOPSIS")
    return re.search(r"\\fB" + re.escape(option) + r"(\\fR|[=\[ ])", text) is not None


class ManPagesTest(unittest.TestCase):
    """Every verb has a page, every option --help shows is in it, each page has the usual sections."""

    def verbs(self) -> list:
        return subcommands(imgtool_help())

    def test_every_verb_and_option_is_documented(self):
        verbs = self.verbs()
        self.assertIn("run", [v for v, _ in verbs])
        missing = []
        for opt in option_names(imgtool_help()):
            if not documented(page("imgtool.1"), opt):
                missing.append(f"imgtool.1: {opt}")
        for verb, aliases in verbs:
            name = f"imgtool-{verb}.1"
            if not os.path.exists(os.path.join(MAN_DIR, name)):
                missing.append(f"{name}: no page")
                continue
            top = page("imgtool.1")
            if not re.search(r"\\fB" + re.escape(verb) + r"\\fR", page_section(top, "COMMANDS")):
                missing.append(f"imgtool.1: verb {verb} not listed under COMMANDS")
            help_text = imgtool_help(verb)
            nested = subcommands(help_text)
            checks = [(name, help_text)]
            for sub, _ in nested:  # `system df`: imgtool-system-df.1, else imgtool-system.1
                sub_name = f"imgtool-{verb}-{sub}.1"
                if not os.path.exists(os.path.join(MAN_DIR, sub_name)):
                    sub_name = name
                checks.append((sub_name, imgtool_help(verb, sub)))
            for checked, text in checks:
                for opt in option_names(text):
                    if not documented(page(checked), opt):
                        missing.append(f"{checked}: {opt}")
            for alias in aliases:
                if not os.path.exists(os.path.join(MAN_DIR, f"imgtool-{alias}.1")):
                    missing.append(f"imgtool-{alias}.1: no page for alias of {verb}")
        self.assertEqual(missing, [], "options --help shows that the man pages lack (docs/man/*.scd)")

    def test_pages_have_the_sections(self):
        pages = sorted(p for p in os.listdir(MAN_DIR) if p.endswith(".1") and not is_alias_page(p))
        for name in PLANNED_PAGES:
            self.assertIn(name, pages)
        self.assertGreaterEqual(len(pages), 25, pages)
        for name in pages:
            roff = page(name)
            for title in SECTIONS:
                self.assertTrue(page_section(roff, title).strip(), f"{name}: no {title} section")
            self.assertIn(r"\fBimgtool\fR(1)" if name != "imgtool.1" else r"\fBimgtool-run\fR(1)",
                          page_section(roff, "SEE ALSO"), name)
        top = page("imgtool.1")
        for title in ["ENVIRONMENT", "FILES", "EXIT STATUS", "COMMANDS"]:
            self.assertTrue(page_section(top, title).strip(), f"imgtool.1: no {title} section")
        # --root's default, as Store::default_root decides it.
        root = page_section(top, "OPTIONS").replace("\\&", "")  # scdoc's \& after each period
        for needle in ["IMGTOOL_ROOT", "/var/lib/imgtool", "XDG_DATA_HOME", "~/.local/share/imgtool"]:
            self.assertIn(needle, root)
        self.assertIn("125", page_section(top, "EXIT STATUS"))
        self.assertEqual(page("imgtool-unmount.1", follow=False), ".so man1/imgtool-umount.1\n")
        self.assertEqual(page("imgtool-df.1", follow=False), ".so man1/imgtool-system-df.1\n")

    def test_pages_render_without_warnings(self):
        if shutil.which("groff") is None:
            raise harness.SetupError("groff missing: install the Debian package groff-base (man-db depends on it)")
        pages = [os.path.join(MAN_DIR, n) for n in sorted(os.listdir(MAN_DIR))
                 if n.endswith(".1") and not is_alias_page(n)]
        # One groff for all pages: a warning names its file.
        proc = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", *pages], capture_output=True, text=True)
        self.assertEqual((proc.returncode, proc.stderr), (0, ""))


class VersionTest(unittest.TestCase):
    def test_version_names_the_commit(self):
        res = harness.run(None, "--version", env=harness.base_env(IMGTOOL_ROOT="/nonexistent"))
        self.assertEqual(res.rc, 0, str(res))
        with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt")) as fh:
            version = re.search(r"project\(imgtool VERSION ([0-9.]+)", fh.read()).group(1)
        m = re.fullmatch(r"imgtool " + re.escape(version) + r" \(commit ([0-9a-f]{7,40}|unknown)\)\n", res.out)
        self.assertIsNotNone(m, str(res))
        git = subprocess.run(["git", "-C", harness.SOURCE_DIR, "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True)
        if git.returncode == 0 and os.path.realpath(git.stdout.strip()) == os.path.realpath(harness.SOURCE_DIR):
            # A commit of this repository (HEAD when the tree was configured).
            self.assertNotEqual(m.group(1), "unknown")
            check = subprocess.run(["git", "-C", harness.SOURCE_DIR, "cat-file", "-e", m.group(1) + "^{commit}"],
                                   capture_output=True)
            self.assertEqual(check.returncode, 0, f"{m.group(1)} is no commit of {harness.SOURCE_DIR}")


COMPLETE_SCRIPT = textwrap.dedent("""\
    source "$1"; source "$2"; shift 2
    while (($#)); do
        n=$1; shift
        COMP_WORDS=("${@:1:n}"); shift "$n"
        COMP_CWORD=$((n - 1)); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _imgtool
        printf '%s\\n' "${COMPREPLY[@]}"
        printf '\\036\\n'
    done
    """)


def complete_many(cases: list, path_first: str | None = None, env_extra: dict | None = None) -> list:
    """Runs the completion function on each word list of `cases` (the command name left out, the last
    word being the one completed) the way bash's programmable completion calls it, all in one bash
    (as in one interactive shell, so the --help cache is used); returns each COMPREPLY."""
    env = harness.base_env(**(env_extra or {}))
    env["PATH"] = (path_first or os.path.dirname(harness.imgtool_binary())) + ":" + env["PATH"]
    env.setdefault("IMGTOOL_ROOT", "/nonexistent/never-used")  # a completion without --root never reaches /var/lib/imgtool
    argv = ["bash", "--norc", "--noprofile", "-c", COMPLETE_SCRIPT, "bash", BASH_COMPLETION, COMPLETION]
    for words in cases:
        argv += [str(len(words) + 1), "imgtool", *words]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0 or proc.stderr:
        raise AssertionError(f"completion of {cases} failed ({proc.returncode}): {proc.stderr}")
    replies = proc.stdout.split("\036\n")[:-1]
    assert len(replies) == len(cases), proc.stdout
    return [[line for line in reply.splitlines() if line] for reply in replies]


def complete(words: list, **kwargs) -> list:
    return complete_many([words], **kwargs)[0]


class CompletionTest(unittest.TestCase):
    """tools/completion/imgtool.bash, driven through bash-completion as a TAB would call it."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(BASH_COMPLETION):
            raise harness.SetupError(f"{BASH_COMPLETION} missing: install the Debian package bash-completion")
        harness.images()

    def setUp(self):
        self.root = harness.new_store(self)
        self.image_id = harness.pull(self, self.root, harness.image_path("busybox", "oci-archive"))
        res = harness.run(self.root, "tag", IMAGE, "other/name:v2")
        self.assertEqual(res.rc, 0, str(res))
        self.short_id = self.image_id.removeprefix("sha256:")[:12]

    def test_verbs_options_images(self):
        r = self.root
        names = ["imgtool-test/busybox:latest", "other/name:v2", self.short_id]
        cases = {
            "ru": ["ru"], "mou": ["mou"], "all": [""], "--r": ["--r"], "--dri": ["run", "--dri"],
            "mount -": ["mount", "-"],
            # Values: CLI11's choice lists; an option's value is no option.
            "driver": ["run", "--driver", ""], "format": ["images", "--format", "j"],
            "net": ["run", "--net", ""], "--tt": ["run", "-e", "X=1", "--tt"],
            # Options go before IMAGE: after it, the container's command.
            "cmd": ["--root", r, "run", IMAGE, "s"], "cmd-opt": ["--root", r, "run", IMAGE, "--t"],
            # Image names and IDs from the store of the --root on the line.
            "run": ["--root", r, "run", ""], "inspect": ["--root", r, "inspect", "oth"],
            "rmi": ["--root=" + r, "rmi", ""],
            # The colon is no word break: the tag completes after "NAME:".
            "colon": ["--root", r, "mount", "other/name:"],
            "base": ["--root", r, "commit", "--upper", "/tmp", "--base", ""],
            "id": ["--root", r, "save", self.short_id[:5]],
            # Global options after the verb count too.
            "after": ["images", "--root", r, "--format", "t"],
            "after-images": ["inspect", "--root", r, "oth"],
        }
        got = dict(zip(cases, complete_many(list(cases.values()))))
        self.assertEqual(got["ru"], ["run"])
        self.assertEqual(sorted(got["mou"]), ["mount", "mounts"])
        for verb, _ in subcommands(imgtool_help()):
            self.assertIn(verb, got["all"])
        self.assertEqual(got["--r"], ["--root"])
        self.assertEqual(got["--dri"], ["--driver"])
        self.assertEqual(sorted(got["mount -"]), sorted(option_names(imgtool_help("mount"))))
        self.assertEqual(got["driver"], ["overlay", "copy"])
        self.assertEqual(got["format"], ["json"])
        self.assertEqual(got["net"], ["host", "none"])
        self.assertEqual(got["--tt"], ["--tty"])
        self.assertIn("sh", got["cmd"])
        self.assertNotIn("--tty", got["cmd-opt"])
        self.assertEqual(sorted(got["run"]), sorted(names))
        self.assertEqual(got["inspect"], ["other/name:v2"])
        self.assertEqual(sorted(got["rmi"]), sorted(names))
        self.assertEqual(got["colon"], ["v2"])
        self.assertEqual(sorted(got["base"]), sorted(names))
        self.assertEqual(got["id"], [self.short_id])
        self.assertEqual(got["after"], ["table"])
        self.assertEqual(got["after-images"], ["other/name:v2"])
        # The --root typed on the line wins over IMGTOOL_ROOT; without it, IMGTOOL_ROOT's store is read.
        empty = harness.new_store(self)
        self.assertEqual(complete_many([["--root", r, "tag", "oth"], ["tag", "oth"]], env_extra={"IMGTOOL_ROOT": empty}),
                         [["other/name:v2"], []])
        self.assertEqual(complete(["tag", "oth"], env_extra={"IMGTOOL_ROOT": r}), ["other/name:v2"])

    def test_umount_targets_with_shell_characters(self):
        work = harness.scratch_dir(self, "compl-")
        target = os.path.join(work, "view $(touch pwned) `touch pwned2`; x")
        os.mkdir(target)
        res = harness.run(self.root, "mount", IMAGE, target)
        self.assertEqual(res.rc, 0, str(res))
        self.addCleanup(harness.run, self.root, "umount", target)
        self.assertEqual(complete_many([["--root", self.root, "umount", ""], ["--root", self.root, "umount", work + "/v"]]),
                         [[target], [target]])
        self.assertEqual(os.listdir(work), [os.path.basename(target)], "completion ran what the store printed")

    def test_containers_and_files(self):
        res = harness.run(self.root, "run", "-d", "--name", "web1", IMAGE, "sleep", "30")
        self.assertEqual(res.rc, 0, str(res))
        cid = res.out.strip()
        self.addCleanup(harness.run, self.root, "rm", "-f", cid)
        archive = harness.image_path("busybox", "oci-archive")
        exec_, stop, logs, rm, pull_local = complete_many([
            ["--root", self.root, "exec", "we"], ["--root", self.root, "stop", cid[:6]],
            ["--root", self.root, "logs", ""], ["--root", self.root, "rm", ""], ["pull-local", archive[:-3]]])
        self.assertEqual(exec_, ["web1"])
        self.assertEqual(stop, [cid[:12]])
        self.assertIn("web1", logs)
        self.assertTrue({"web1", "other/name:v2", cid[:12]} <= set(rm), rm)  # rm takes containers and images
        self.assertIn(archive, pull_local)  # pull-local completes files

    def test_store_output_is_never_evaluated(self):
        # The store validates names, so a stand-in imgtool prints what a hostile store could: names
        # with command substitutions, backquotes, separators and spaces.
        work = harness.scratch_dir(self, "compl-")
        stub = os.path.join(work, "bin")
        os.mkdir(stub)
        marker = os.path.join(work, "pwned")
        with open(os.path.join(stub, "imgtool"), "w") as fh:
            fh.write(textwrap.dedent(f"""\
                #!/bin/sh
                case "$*" in
                *--help*) exec {harness.imgtool_binary()} "$@" ;;
                *images*) cat <<'EOF'
                REPOSITORY                               TAG             IMAGE ID       CREATED              SIZE
                evil$(touch${{IFS}}{marker})             latest          0123456789ab   3 years ago          1MB
                `touch${{IFS}}{marker}`                  x               0123456789ac   3 years ago          1MB
                a;touch${{IFS}}{marker}                  x               $(touch)       3 years ago          1MB
                has space                                x               0123456789ad   3 years ago          1MB
                good/name                                v1              abcdef012345   3 years ago          1MB
                <none>                                   <none>          fedcba987654   3 years ago          1MB
                EOF
                ;;
                *"ps -a"*) cat <<'EOF'
                CONTAINER ID   IMAGE        COMMAND     CREATED         STATUS          NAMES
                0123456789ab   good/name    "sh"        1 minute ago    Up 1 minute     web
                0123456789ac   good/name    "sh"        1 minute ago    Up 1 minute     $(touch${{IFS}}{marker})
                EOF
                ;;
                *mounts*) printf 'IMAGE ID       DRIVER   MODE      TARGET\\n0123456789ab   overlay  ro        /x/$(touch %s)\\n' '{marker}' ;;
                esac
                """))
        os.chmod(os.path.join(stub, "imgtool"), 0o755)
        store = os.path.join(work, "store")  # completion asks only a store that exists
        os.mkdir(store)
        open(os.path.join(store, "lock"), "w").close()
        run, rm, umount = complete_many([["run", ""], ["rm", ""], ["umount", ""]], path_first=stub,
                                        env_extra={"IMGTOOL_ROOT": store})
        self.assertFalse(os.path.exists(marker), "completion ran what the store printed")
        # Rows whose name a store cannot hold are not offered, a row that is no table row (a name with
        # a space: its ID column is no ID) is skipped whole; an untagged image by its ID only.
        self.assertEqual(sorted(run), sorted(["good/name:v1", "abcdef012345", "0123456789ab", "0123456789ac",
                                              "fedcba987654"]))
        self.assertEqual(sorted(rm), sorted(set(run) | {"web"}))
        self.assertEqual(umount, [f"/x/$(touch {marker})"])  # a path, offered as it is (readline quotes it)

    def test_a_tab_creates_no_store(self):
        work = tempfile.mkdtemp(prefix="comp-", dir=harness.TEST_TMP)
        self.addCleanup(shutil.rmtree, work, True)
        typo = os.path.join(work, "typo", "store")
        got = complete_many([["--root", typo, "rmi", ""], ["--root", typo, "umount", ""], ["rmi", ""]],
                            env_extra={"IMGTOOL_ROOT": typo})
        self.assertEqual(got, [[], [], []])
        self.assertEqual(os.listdir(work), [])


class PackageTest(unittest.TestCase):
    """cpack -G DEB in the build tree, then dpkg -i on this machine, checked and removed."""

    def test_deb_installs_and_removes(self):
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "imgtool"], capture_output=True, text=True)
        if "installed" in status.stdout.split():
            self.skipTest("a Debian package imgtool is already installed: not replacing it "
                          "(dpkg -r imgtool, if it is a left-over of this test)")
        for path in ["/usr/bin/imgtool", "/usr/local/bin/imgtool"]:
            if os.path.exists(path):
                self.skipTest(f"{path} exists (installed by other means): not overwriting it")
        for tool, package in [("cpack", "cmake"), ("dpkg-shlibdeps", "dpkg-dev"), ("man", "man-db")]:
            if shutil.which(tool) is None:
                raise harness.SetupError(f"{tool} missing: install the Debian package {package}")
        out = harness.scratch_dir(self, "deb-")
        proc = subprocess.run(["cpack", "-G", "DEB", "-B", out], cwd=BUILD_DIR, capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, os.listdir(out))
        self.assertRegex(debs[0], r"^imgtool_[0-9.]+_[a-z0-9]+\.deb$")
        deb = os.path.join(out, debs[0])

        # What is in it: the binary, man pages, completion, documentation; no test or fuzz program.
        listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
        files = [line.split()[-1].removeprefix(".") for line in listing.splitlines() if not line.startswith("d")]
        allowed = ("/usr/bin/imgtool", "/usr/share/man/man1/imgtool", "/usr/share/doc/imgtool/",
                   "/usr/share/bash-completion/completions/imgtool")
        self.assertEqual([f for f in files if not f.startswith(allowed)], [], listing)
        self.assertIn("/usr/share/man/man1/imgtool-pull-local.1", files)
        self.assertIn("/usr/share/doc/imgtool/docs/architecture.md", files)

        proc = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=120)
        self.addCleanup(subprocess.run, ["dpkg", "-r", "imgtool"], capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

        built = harness.run(None, "--version", env=harness.base_env(IMGTOOL_ROOT="/nonexistent")).out
        installed = subprocess.run(["/usr/bin/imgtool", "--version"], capture_output=True, text=True)
        self.assertEqual((installed.returncode, installed.stdout), (0, built))
        if "(commit unknown)" not in built:  # built from a git checkout: the package names its commit
            self.assertRegex(installed.stdout, r"^imgtool [0-9.]+ \(commit [0-9a-f]{7,40}\)\n$")
        man = subprocess.run(["man", "-w", "imgtool-run"], capture_output=True, text=True)
        self.assertEqual((man.returncode, man.stdout.strip()), (0, "/usr/share/man/man1/imgtool-run.1"), man.stderr)
        # bash-completion's loader finds the file on demand, as on a TAB.
        loaded = subprocess.run(["bash", "--norc", "-c", f"source {BASH_COMPLETION}; _completion_loader imgtool; "
                                 "complete -p imgtool"], capture_output=True, text=True)
        self.assertEqual(loaded.stdout.strip(), "complete -F _imgtool imgtool", loaded.stderr)

        fields = subprocess.run(["dpkg-query", "-W", "-f=${Depends}\\n${Recommends}\\n${Section}\\n${Maintainer}\\n"
                                 "${Description}", "imgtool"], capture_output=True, text=True, check=True).stdout
        depends, recommends, section, maintainer, description = fields.split("\n", 4)
        self.assertTrue(description.startswith("daemonless container image store"), description)
        self.assertIn("\n imgtool pulls container images", description)
        self.assertRegex(depends, r"(^|, )libc6 \(>= [0-9.]+\)", depends)  # computed by dpkg-shlibdeps
        self.assertIn("libcurl4", depends)  # dlopen'd by pull, named by hand
        self.assertEqual(recommends, "uidmap")
        self.assertEqual(section, "admin")
        self.assertRegex(maintainer, r"<[^>]+@[^>]+>")

        proc = subprocess.run(["dpkg", "-r", "imgtool"], capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertFalse(os.path.exists("/usr/bin/imgtool"))


if __name__ == "__main__":
    unittest.main()
