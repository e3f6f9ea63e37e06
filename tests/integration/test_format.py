"""Integration tests for --format on images, ps, mounts and inspect (table, json, the Go-template
subset docker and podman users type), the CREATED column's width, and rm/rmi of an image by ID
or by name (podman 4.3's refusal of an ID with several tags, its Untagged:/Deleted: lines).

What podman 4.3.1 printed for the same operations (compared by hand on the test VM):
  podman rmi 80ea121732e2  (tags example.com/testdata:v1, localhost/a:latest)
    Error: unable to delete image "80ea...ee11" by ID with more than one tag
           ([example.com/testdata:v1 localhost/a:latest]): please force removal     (exit 125)
  podman rmi -f 80ea121732e2  ->  Untagged: (one line per name), Deleted: ID
  podman rmi a                ->  Untagged: localhost/a:latest
  podman images --format 'table {{.Repository}}\\t{{.ID}}'  ->  REPOSITORY  IMAGE ID, aligned
  podman ps -a --format '{{json .}}' / images '{{.CreatedSince}}'  ->  "Less than a second ago",
    "1 second ago", "2 years ago" (go-units' words, docker's too)
"""

from __future__ import annotations

import json
import os
import re
import time
import unittest
from datetime import datetime, timezone

import harness
from harness import gen_images
from test_mount import MountTestCase, short_id
from test_run import FMT, IMAGE, RunTest

IMAGE_FIELDS = "Repository, Tag, ID, Digest, CreatedAt, CreatedSince, Size"
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$")


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.images()


def hexof(digest: str) -> str:
    return digest.split(":", 1)[1]


class RecentImage(gen_images.Image):
    """An image whose config says it was created now (the CREATED column's widest words)."""

    @property
    def config_bytes(self) -> bytes:
        cfg = json.loads(gen_images.Image.config_bytes.func(self))
        cfg["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return gen_images.canon(cfg)


class StoreCommands:
    """imgtool on the test's store (self.root); ok() also wants exit 0 and nothing on stderr."""

    def imgtool(self, *args) -> harness.Result:
        return harness.run(self.root, *args)

    def ok(self, *args) -> str:
        res = self.imgtool(*args)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        return res.out


class ImagesTest(StoreCommands, unittest.TestCase):
    """images --format; rm/rmi by ID and by name. One store: basic (tagged twice), an untagged
    image created now."""

    def setUp(self):
        self.root = harness.new_store(self)
        self.basic = harness.image_record("basic", "oci-archive")
        harness.pull(self, self.root, harness.image_path(self.basic))
        self.ok("tag", "imgtool-test/basic", "other:v1")
        layer = gen_images.Layer([gen_images.f("now.txt", "now\n")], "gzip", "recent")
        img = RecentImage([layer], gen_images.runtime(["/bin/sh"]))
        path = os.path.join(harness.scratch_dir(self), "recent.oci")
        files = gen_images.build_oci(gen_images.Job("recent", ["recent:latest"], [img], ("oci-layout",))).files
        index = json.loads(files["index.json"])
        for entry in index["manifests"]:
            del entry["annotations"]  # no name: imported untagged
        files["index.json"] = gen_images.canon(index)
        gen_images.write_dir(path, files)
        res = harness.run(self.root, "pull-local", path)
        self.assertEqual(res.rc, 0, str(res))
        self.recent = res.out.splitlines()[0]

    def test_template_fields(self):
        out = self.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
        b, r = hexof(self.basic["id"])[:12], hexof(self.recent)[:12]
        self.assertEqual(sorted(out.splitlines()),
                         sorted([f"imgtool-test/basic:latest {b}", f"other:v1 {b}", f"<none>:<none> {r}"]))
        # One line per image row, a tab and a newline from their escapes (the newline not doubled).
        out = self.ok("images", "--format", "{{.ID}}\\t{{.CreatedAt}}\\t{{.CreatedSince}}\\t{{.Size}}\\t{{.Digest}}\\n")
        rows = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}
        self.assertEqual(len(out.splitlines()), 3, out)
        self.assertEqual(rows[b][0], "2023-11-14 22:13:20 +0000 UTC")  # gen_images.CREATED, as Go prints it
        self.assertRegex(rows[b][1], r"^\d+ years ago$")
        self.assertRegex(rows[r][0], GO_TIME)
        self.assertRegex(rows[r][1], r"^(Less than a second|1 second|\d+ seconds) ago$")
        table_sizes = {re.search(r" ([0-9a-f]{12}) ", line).group(1): line.split()[-1]
                       for line in self.ok("images").splitlines()[1:]}
        self.assertEqual(rows[b][2], table_sizes[b])
        self.assertRegex(rows[b][3], r"^sha256:[0-9a-f]{64}$")
        # {{json .}}: one object per line (docker's), the template's fields
        for line in self.ok("images", "--format", "{{json .}}").splitlines():
            self.assertEqual(sorted(json.loads(line)), sorted(IMAGE_FIELDS.split(", ")))
        self.assertEqual(self.ok("images", "--format", "{{json .Tag}}").splitlines().count('"v1"'), 1)
        self.assertEqual(self.ok("images", "--format", "x"), "x\nx\nx\n")  # literal text, per row

    def test_table_template(self):
        out = self.ok("images", "--format", "table {{.Repository}}\\t{{.ID}}\\t{{.CreatedSince}}")
        lines = out.splitlines()
        self.assertEqual(len(lines), 4, out)
        self.assertRegex(lines[0], r"^REPOSITORY +IMAGE ID +CREATED$")
        id_col, created_col = lines[0].index("IMAGE ID"), lines[0].index("CREATED")
        for line in lines[1:]:
            self.assertRegex(line[id_col:], r"^[0-9a-f]{12}   ", out)
            self.assertEqual(line[id_col - 1], " ")
            self.assertRegex(line[created_col:], r"^\S.* ago$", out)
        # The same table as the default, but for CREATED: an image made seconds ago may turn from
        # "Less than a second ago" into "1 second ago" between the two calls (and widen the column).
        def cells_but_created(text):
            return [row[:3] + row[4:] for row in (re.split(r" {2,}", line) for line in text.splitlines())]
        self.assertEqual(cells_but_created(self.ok("images", "--format", "table")),
                         cells_but_created(self.ok("images")))

    def test_json_repo_tags(self):
        rows = json.loads(self.ok("images", "--format", "json"))
        by_id = {}
        for row in rows:
            by_id.setdefault(row["ID"], []).append(row)
        [untagged] = by_id[self.recent]
        # docker's lists for an untagged image: [] (podman 4.3.1 prints "RepoTags": null for every
        # image, its names in "Names"; the issue asks for []).
        self.assertEqual((untagged["Repository"], untagged["Tag"], untagged["RepoTags"], untagged["RepoDigests"]),
                         ("<none>", "<none>", [], []))
        self.assertIn("Created", untagged)
        self.assertIsInstance(untagged["Size"], int)
        for row in by_id[self.basic["id"]]:
            self.assertEqual(sorted(row["RepoTags"]), ["imgtool-test/basic:latest", "other:v1"])
            self.assertRegex(row["Digest"], r"^sha256:[0-9a-f]{64}$")
        self.assertIn('"RepoTags": []', self.ok("images", "--format", "json"))

    def test_created_column_fits(self):
        # The untagged image was created now: "Less than a second ago" / "N seconds ago" is wider
        # than the column's 20 characters had been; the SIZE column moves over, never overlaps.
        out = self.ok("images")
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith(f"{'REPOSITORY':<40} {'TAG':<15} {'IMAGE ID':<14} CREATED"), out)
        size_col = lines[0].index("SIZE")
        created_col = lines[0].index("CREATED")
        for line in lines[1:]:
            self.assertEqual(line[size_col - 1], " ", out)
            self.assertNotEqual(line[size_col], " ", out)
            self.assertRegex(line[created_col:size_col].rstrip(), r"^[A-Za-z0-9 ]+ ago$", out)
        recent_row = next(line for line in lines if line.startswith("<none>"))
        self.assertRegex(recent_row[created_col:], r"^(Less than a second|1 second|\d+ seconds) ago +\S")

    def test_format_errors(self):
        cases = [
            ("{{.Foo}}", f'imgtool: images: unknown field "Foo" in --format; fields: {IMAGE_FIELDS}'),
            ("{{.ID", 'imgtool: images: invalid --format "{{.ID": "{{" at column 1 is never closed by "}}"'),
            ("{{range .}}{{.ID}}{{end}}", 'imgtool: images: invalid --format "{{range .}}{{.ID}}{{end}}": '
                                         '"{{range .}}" at column 1: "range" is not supported: '
                                         'only {{.Field}} and {{json .Field}} are supported'),
            ("{{upper .Tag}}", None),
            ("{{.Tag | upper}}", None),
            ("table {{.Nope}}", None),
            ("x" * 70000, "imgtool: images: --format template is 70000 bytes; at most 65536"),
        ]
        for fmt, expected in cases:
            with self.subTest(fmt=fmt[:30]):
                line = harness.assert_one_error_line(self, self.imgtool("images", "--format", fmt), "images")
                if expected:
                    self.assertEqual(line, expected)
        # A bad template costs nothing: refused before the store is opened.
        res = harness.run(os.path.join(harness.scratch_dir(self), "nostore"), "images", "--format", "{{.Foo}}")
        harness.assert_one_error_line(self, res, "images", "unknown field")

    def test_inspect_format(self):
        b = self.basic["id"]
        self.assertEqual(self.ok("inspect", "--format", "{{.Id}}", "imgtool-test/basic", hexof(self.recent)[:12]),
                         f"{b}\n{self.recent}\n")
        [info] = harness.inspect(self, self.root, "imgtool-test/basic")
        cmd = info["Config"]["Cmd"]
        self.assertEqual(self.ok("inspect", "--format", "{{.Config.Cmd}}", "other:v1"), "[" + " ".join(cmd) + "]\n")
        self.assertEqual(json.loads(self.ok("inspect", "--format", "{{json .Config.Env}}", "other:v1")),
                         info["Config"]["Env"])
        self.assertEqual(self.ok("inspect", "--format", "{{.Os}}/{{.Architecture}}", "other:v1"),
                         f"linux/{info['Architecture']}\n")
        self.assertEqual(self.ok("inspect", "--format", "{{json .RootFS.Layers}}", "other:v1"),
                         json.dumps(info["RootFS"]["Layers"], separators=(",", ":")) + "\n")
        self.assertEqual(json.loads(self.ok("inspect", "--format", "{{json .}}", "other:v1")), info)
        self.assertEqual(json.loads(self.ok("inspect", "--format", "json", "other:v1")), [info])
        line = harness.assert_one_error_line(self, self.imgtool("inspect", "--format", "{{.Config.Foo}}", "other:v1"),
                                             "inspect", 'unknown field "Config.Foo"')
        self.assertIn("Config's fields: User, ExposedPorts, Env, Entrypoint, Cmd", line)
        harness.assert_one_error_line(self, self.imgtool("inspect", "--format", "{{.id}}", "other:v1"),
                                      "inspect", 'unknown field "id"', "fields: Id, RepoTags")
        harness.assert_one_error_line(self, self.imgtool("inspect", "--format", "table", "other:v1"),
                                      "inspect", "--format table")

    # ---- rm / rmi ---------------------------------------------------------

    def test_rm_by_id_with_several_tags(self):
        b = hexof(self.basic["id"])
        before = harness.store_listing(self.root)
        for verb, ref in (("rmi", b[:12]), ("rm", b), ("rmi", "sha256:" + b)):
            with self.subTest(verb=verb, ref=ref):
                line = harness.assert_one_error_line(self, self.imgtool(verb, ref), verb)
                self.assertEqual(line, f'imgtool: {verb}: unable to delete image "{b}" by ID with more than one tag '
                                       f'([imgtool-test/basic:latest other:v1]): please force removal')
                self.assertEqual(harness.store_listing(self.root), before, "a refused rm changed the store")
        self.assertEqual(self.ok("rmi", "-f", b[:12]),
                         f"Untagged: imgtool-test/basic:latest\nUntagged: other:v1\nDeleted: {self.basic['id']}\n")
        self.assertEqual(harness.tag_map(self, self.root), {})
        self.assertEqual([row["ID"] for row in harness.images_json(self, self.root)], [self.recent])
        # An untagged image by ID: Deleted only.
        self.assertEqual(self.ok("rm", hexof(self.recent)[:12]), f"Deleted: {self.recent}\n")
        self.assertEqual(harness.layer_hexes(self.root), [])

    def test_rm_force_and_by_name(self):
        b = hexof(self.basic["id"])
        self.assertEqual(self.ok("rm", "-f", b[:8]),
                         f"Untagged: imgtool-test/basic:latest\nUntagged: other:v1\nDeleted: {self.basic['id']}\n")
        harness.pull(self, self.root, harness.image_path(self.basic))
        self.ok("tag", "imgtool-test/basic", "other:v1")
        # By name: the name only while others remain, then the name and the image.
        self.assertEqual(self.ok("rmi", "other:v1"), "Untagged: other:v1\n")
        self.assertEqual(self.ok("rmi", "imgtool-test/basic"),
                         f"Untagged: imgtool-test/basic:latest\nDeleted: {self.basic['id']}\n")
        # One name left: by ID needs no force.
        harness.pull(self, self.root, harness.image_path(self.basic))
        self.assertEqual(self.ok("rmi", b[:12]), f"Untagged: imgtool-test/basic:latest\nDeleted: {self.basic['id']}\n")


class PsTest(StoreCommands, RunTest):
    """ps --format with one detached container; rm's container-first rule."""

    def test_ps_format_and_rm_container_first(self):
        self.ok("tag", IMAGE, "web")
        res = self.imgtool("run", "-d", "--name", "web", IMAGE, "sleep", "60")
        self.assertEqual(res.rc, 0, str(res))
        cid = res.out.strip()
        self.addCleanup(self.imgtool, "rm", "-f", cid)
        out = self.ok("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.Command}}|{{.Status}}|{{.RunningFor}}")
        self.assertRegex(out, rf'^{cid[:12]} web {IMAGE} running "sleep 60"\|'
                              r"Up (Less than a second|1 second|\d+ seconds)\|"
                              r"(Less than a second|1 second|\d+ seconds) ago\n$")
        out = self.ok("ps", "--no-trunc", "--format", "{{.ID}} {{.ImageID}} {{.Pid}} {{json .ExitCode}} {{.CreatedAt}}")
        full, image_id, pid, exit_code, created = out.split(" ", 4)
        self.assertEqual((full, image_id, exit_code), (cid, self.image_id, "null"))
        self.assertGreater(int(pid), 1)
        self.assertRegex(created.strip(), GO_TIME)
        doc = json.loads(self.ok("ps", "--format", "{{json .}}"))
        self.assertEqual(sorted(doc), sorted(["ID", "Names", "Image", "ImageID", "Command", "CreatedAt", "RunningFor",
                                              "Status", "State", "Pid", "ExitCode"]))
        out = self.ok("ps", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.RunningFor}}")
        header, row = out.splitlines()
        self.assertRegex(header, r"^CONTAINER ID   NAMES   CREATED$")
        self.assertEqual(row[:header.index("NAMES")], cid[:12] + "   ")
        self.assertEqual([c["Id"] for c in json.loads(self.ok("ps", "--format", "json"))], [cid])
        # The default table still sizes its columns to the widest cell.
        header, row = self.ok("ps").splitlines()
        self.assertTrue(header.startswith("CONTAINER ID   IMAGE"), header)
        harness.assert_one_error_line(self, self.imgtool("ps", "--format", "{{.Ports}}"), "ps",
                                      'unknown field "Ports" in --format; fields: ID, Names, Image, ImageID')
        # rm NAME: a container's name first; the image tagged the same stays.
        self.assertEqual(self.ok("rm", "-f", "web"), "web\n")
        self.assertEqual(self.ok("ps", "-aq"), "")
        self.assertIn("web:latest", harness.tag_map(self, self.root))
        self.assertEqual(self.ok("rm", "web"), "Untagged: web:latest\n")  # no container of that name now


class MountsTest(MountTestCase):

    def test_mounts_format(self):
        image = self.pull("basic")
        target = self.mkdir("t")
        self.mount(image, target)
        out = self.imgtool("mounts", "--format", "{{.ID}} {{.Image}} {{.Driver}} {{.Mode}} {{.Target}}|{{.Upper}}|")
        self.assertEqual((out.rc, out.out, out.err),
                         (0, f"{short_id(image)} imgtool-test/basic:latest overlay ro {target}||\n", ""), str(out))
        out = self.imgtool("mounts", "--format", "table {{.ID}}\\t{{.Target}}").out
        self.assertEqual(out, f"IMAGE ID       TARGET\n{short_id(image)}   {target}\n")
        [doc] = json.loads(self.imgtool("mounts", "--format", "json").out)
        self.assertEqual(doc, {"ID": image, "Image": "imgtool-test/basic:latest", "Driver": "overlay",
                               "Mode": "ro", "Target": target, "Upper": ""})
        self.assertEqual(json.loads(self.imgtool("mounts", "--format", "{{json .}}").out)["ID"], short_id(image))
        self.assertEqual(self.imgtool("mounts", "--format", "table").out, self.imgtool("mounts").out)
        res = self.imgtool("mounts", "--format", "{{.Source}}")
        harness.assert_one_error_line(self, res, "mounts",
                                      'unknown field "Source" in --format; fields: ID, Image, Driver, Mode, Target, Upper')
        self.umount(target)
        self.assertEqual(self.imgtool("mounts", "--format", "{{.Target}}").out, "")


if __name__ == "__main__":
    unittest.main()
