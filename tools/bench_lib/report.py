"""Results: per-contender summaries, the targets from the issue, markdown and JSON."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from dataclasses import asdict

from .images import layer_rows, summary_rows
from .system import fs_type, tool_version
from .timing import median

# (id, description, group, kind, other tool, limit)
#   ratio: imgtool median / other median <= limit
#   abs:   imgtool median <= limit seconds
#   rss:   imgtool peak RSS over every pull-local of the big image < limit MiB
TARGETS = [
    ("gzip-umoci", "pull-local gzip <= 0.15x umoci unpack", "pull gzip", "ratio", "umoci", 0.15),
    ("gzip-tar", "pull-local gzip <= 0.5x tar -xzf loop", "pull gzip", "ratio", "tar", 0.5),
    ("gzip-floor", "pull-local gzip <= 1.5x igzip -dc floor", "pull gzip", "ratio", "floor", 1.5),
    ("zstd-tar", "pull-local zstd <= 0.5x tar --zstd -xf loop", "pull zstd", "ratio", "tar", 0.5),
    ("zstd-floor", "pull-local zstd <= 1.5x zstd -dc floor", "pull zstd", "ratio", "floor", 1.5),
    ("docker-umoci", "pull-local docker-archive <= 0.15x umoci unpack (uncompressed layout)",
     "pull docker", "ratio", "umoci", 0.15),
    ("docker-tar", "pull-local docker-archive <= 0.5x tar -xf loop", "pull docker", "ratio",
     "tar", 0.5),
    ("docker-floor", "pull-local docker-archive <= 1.5x cat floor", "pull docker", "ratio",
     "floor", 1.5),
    ("rootless-umoci", "rootless pull-local gzip <= 0.15x umoci unpack --rootless (issue 7: keep the speed)",
     "pull gzip rootless", "ratio", "umoci", 0.15),
    ("repull-gzip", "re-pull (gzip OCI, already stored) <= 0.2 s", "re-pull gzip", "abs", None,
     0.2),
    ("repull-zstd", "re-pull (zstd OCI, already stored) <= 0.2 s", "re-pull zstd", "abs", None,
     0.2),
    ("repull-docker", "re-pull (docker-archive, already stored) <= 0.2 s", "re-pull docker", "abs",
     None, 0.2),
    ("registry-podman", "pull (loopback registry, gzip) <= 0.10x podman pull", "pull registry", "ratio",
     "podman", 0.10),
    ("registry-skopeo", "pull (loopback registry, gzip) <= 0.15x skopeo copy + umoci unpack",
     "pull registry", "ratio", "skopeo+umoci", 0.15),
    ("registry-local", "pull (loopback registry, gzip) <= 1.3x pull-local of the same image",
     "pull registry", "ratio", "local", 1.3),
    ("repull-registry", "re-pull from the registry (image already stored) <= 0.05 s", "re-pull registry",
     "abs", None, 0.05),
    ("mount", "mount+umount <= 0.15x podman image mount+umount", "mount+umount", "ratio", "podman",
     0.15),
    ("run", "run /bin/true <= 1.1x crun run (issue 15; crun without seccomp, cgroups, overlay)",
     "run /bin/true", "ratio", "crun", 1.1),
    ("run-seccomp", "run /bin/true <= 1.1x crun run with docker's seccomp profile", "run /bin/true",
     "ratio", "crun-seccomp", 1.1),
    ("rss", "peak RSS of pull-local (big image, any form) < 100 MB", None, "rss", None, 100.0),
]


def summarize(fs: str, c) -> dict:
    walls = [s.wall for s in c.samples]
    rec = {
        "fs": fs, "group": c.group, "tool": c.tool, "label": c.label, "status": c.status,
        "note": c.note, "latency": c.latency, "command": c.display(),
        "samples": [asdict(s) for s in c.samples], **c.extra,
    }
    if walls:
        rec.update(
            median_s=median(walls), min_s=min(walls),
            cpu_median_s=median([s.cpu for s in c.samples]),
            rss_max_kb=max(s.rss_kb for s in c.samples),
            with_sync_median_s=median([s.wall + s.sync for s in c.samples]),
        )
    return rec


def _find(records, fs, group, tool):
    for r in records:
        if r["fs"] == fs and r["group"] == group and r["tool"] == tool:
            return r
    return None


def evaluate_targets(records: list[dict], fss: list[str], extra: list[tuple] = ()) -> list[dict]:
    out = []
    for tid, text, group, kind, other, limit in [*TARGETS, *extra]:
        row = {"id": tid, "target": text, "limit": limit, "by_fs": {}}
        for fs in fss:
            res = {"verdict": "n/a", "value": None, "why": ""}
            if kind == "rss":
                rss = [r["rss_max_kb"] for r in records if r["fs"] == fs and r["tool"] == "imgtool"
                       and r["group"].startswith("pull ") and r.get("rss_max_kb")]
                if rss:
                    v = max(rss) / 1024
                    res.update(value=v, verdict="PASS" if v < limit else "FAIL")
                else:
                    res["why"] = "no successful pull-local"
            else:
                me = _find(records, fs, group, "imgtool")
                if not me or "median_s" not in me:
                    res["why"] = me["note"] if me else "not measured"
                elif kind == "abs":
                    v = me["median_s"]
                    res.update(value=v, verdict="PASS" if v <= limit else "FAIL")
                else:
                    o = _find(records, fs, group, other)
                    if not o or "median_s" not in o:
                        res["why"] = (o["note"] if o else f"{other} not measured") or "n/a"
                    else:
                        v = me["median_s"] / o["median_s"]
                        res.update(value=v, verdict="PASS" if v <= limit else "FAIL")
            row["by_fs"][fs] = res
        out.append(row)
    return out


# --- machine --------------------------------------------------------------------------------

def machine(work: str, fs_types: dict, imgtool: str, repo: str) -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = dirty = "?"
    try:
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short=12", "HEAD"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True).stdout.strip() or "?"
        st = subprocess.run(["git", "--no-optional-locks", "-C", repo, "status", "--porcelain",
                             "--untracked-files=no"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout
        dirty = "yes" if st.strip() else "no"
    except OSError:
        pass
    src_fs = fs_type(os.path.join(work, "images"))
    try:
        st = os.stat(imgtool)
        with open(imgtool, "rb") as f:
            binary = {"sha256": hashlib.file_digest(f, "sha256").hexdigest()[:16],
                      "mtime": time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime))}
    except OSError:
        binary = {}
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / (1 << 20), 1),
        "filesystems": dict(fs_types),
        "sources_fs": src_fs,
        "imgtool": imgtool,
        "imgtool_commit": commit,
        "imgtool_worktree_modified": dirty,
        "imgtool_binary": binary,
        "versions": {
            "imgtool": tool_version([imgtool, "--version"]),
            "umoci": tool_version(["umoci", "--version"]),
            "skopeo": tool_version(["skopeo", "--version"]),
            "podman": tool_version(["podman", "--version"]),
            "crun": tool_version(["crun", "--version"]),
            "runc": tool_version(["runc", "--version"]),
            "tar": tool_version(["tar", "--version"]),
            "igzip": tool_version(["igzip", "--version"]),
            "zstd": tool_version(["zstd", "--version"]),
            "python": platform.python_version(),
        },
    }


# --- rendering ------------------------------------------------------------------------------

def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _fmt(rec, key):
    v = rec.get(key)
    if v is None:
        return "—"
    return f"{v * 1000:.1f} ms" if rec["latency"] else f"{v:.2f} s"


def results_table(records: list[dict], fs: str) -> str:
    disk = fs == "disk"
    header = ["case", "tool", "median", "min", "CPU (median)", "peak RSS", "imgtool ÷ tool"]
    if disk:
        header.append("median + syncfs")
    rows = []
    for r in records:
        if r["fs"] != fs:
            continue
        me = _find(records, fs, r["group"], "imgtool")
        if r["status"] != "ok" or "median_s" not in r:
            row = [r["group"], r["label"], "n/a", "", "", "", r["note"] or r["status"]]
            if disk:
                row.append("")
            rows.append(row)
            continue
        ratio = ""
        if r["tool"] == "imgtool":
            ratio = "1.00" if not r["group"].startswith("re-pull") else ""
        elif me and "median_s" in me and r["tool"] != "spawn":
            ratio = f"{me['median_s'] / r['median_s']:.2f}"
        rss = f"{r['rss_max_kb'] / 1024:.0f} MB" if r["rss_max_kb"] else "—"
        row = [r["group"], r["label"], _fmt(r, "median_s"), _fmt(r, "min_s"),
               _fmt(r, "cpu_median_s"), rss, ratio]
        if disk:
            row.append(_fmt(r, "with_sync_median_s") if not r["latency"]
                       and r["tool"] not in ("floor",) and not r["group"].startswith("re-pull")
                       else "")
        rows.append(row)
    return table(header, rows)


def targets_table(targets: list[dict], fss: list[str]) -> str:
    rows = []
    for t in targets:
        row = [t["target"]]
        for fs in fss:
            res = t["by_fs"][fs]
            if res["value"] is None:
                row.append(f"n/a ({res['why']})" if res["why"] else "n/a")
            else:
                unit = (" MB" if t["id"] == "rss"
                        else " s" if t["id"].startswith("repull") else "×")
                val = f"{res['value']:.0f}" if t["id"] == "rss" else f"{res['value']:.2f}"
                row.append(f"**{res['verdict']}** ({val}{unit})")
        rows.append(row)
    return table(["target (from the issue)", *fss], rows)


def markdown(doc: dict) -> str:
    m, fss = doc["machine"], doc["filesystems"]
    v = m["versions"]
    parts = [
        "# imgtool benchmark results", "",
        f"Command: `{doc['command']}` — {doc['date']}, took {doc['duration_s'] / 60:.1f} min; "
        f"{doc['reps']} repetitions of each pull case, {doc['lat_reps']} of each latency case "
        "(medians, with the minimum).", "",
        "## Machine", "",
        f"- CPU: {m['cpu']}, nproc {m['nproc']}; memory {m['memory_gib']} GiB; "
        f"kernel {m['kernel']}",
        "- filesystems: " + ", ".join(f"{fs} case on {t}" for fs, t in m["filesystems"].items())
        + f"; sources (images) on {m['sources_fs']}, read from a warm page cache",
        f"- {v['imgtool']} (commit {m['imgtool_commit']}, worktree modified: "
        f"{m['imgtool_worktree_modified']}), `{m['imgtool']}` built "
        f"{m['imgtool_binary'].get('mtime', '?')}, "
        f"sha256 {m['imgtool_binary'].get('sha256', '?')}…",
        f"- {v['umoci']}; {v['skopeo']}; {v['podman']}; {v['crun']}; {v['runc']}; {v['tar']}; "
        f"{v['igzip']}; {v['zstd']}",
        "- 1-minute load average at the samples: " + "; ".join(
            f"{fs} mean {l['mean']:.1f} (min {l['min']:.1f}, max {l['max']:.1f})"
            for fs, l in doc["load"].items()) + f" on {m['nproc']} CPUs",
        "",
        "## Images", "",
        table(["form", "archive", "layers (uncompressed)", "entries", "layers"], doc["image_rows"]),
        "",
        table(["layer", "content", "entries", "tar MiB", "gzip MiB", "zstd MiB"],
              doc["layer_rows"]),
        "",
        f"gzip layers: `{doc['images']['gzip_tool']}`; "
        f"zstd layers: `{doc['images']['zstd_tool']}`.",
        "",
    ]
    if doc.get("external_layer_rows"):
        parts += ["Layers of the `--image` images:", "",
                  table(["layer", "compression", "entries", "tar MiB", "blob MiB"],
                        doc["external_layer_rows"]), ""]
    for fs in fss:
        parts += [f"## Results on {fs} ({m['filesystems'][fs]})", "",
                  results_table(doc["records"], fs), ""]
    parts += ["## Targets", "", targets_table(doc["targets"], fss), ""]
    notes = doc.get("notes") or []
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts)


def load_summary(records: list[dict], fss: list[str]) -> dict:
    out = {}
    for fs in fss:
        ls = [s["load"] for r in records if r["fs"] == fs for s in r["samples"]]
        if ls:
            out[fs] = {"mean": sum(ls) / len(ls), "min": min(ls), "max": max(ls)}
    return out


def image_tables(desc: dict) -> tuple[list[list[str]], list[list[str]]]:
    return summary_rows(desc), layer_rows(desc)
