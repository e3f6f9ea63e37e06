"""Helpers for tools/bench: image set generation, timing, contenders, report.

Only the Python standard library is used; external tools (umoci, skopeo, podman,
crun, runc, tar, igzip, zstd, pigz, debootstrap) are driven as subprocesses.
"""
