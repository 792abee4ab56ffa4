#!/usr/bin/env python3
"""Writes an OCI image layout for the containerd tests, offline and reproducibly.

make-oci-image.py DIR NAME [EXTRA_LAYERS]

Layer 1: busybox-static as /bin/busybox with a few applets, /etc/motd ("one"),
/etc/gone and /tmp. Layer 2 changes /etc/motd to "two", whites out /etc/gone
(.wh.gone) and adds /newdir/file. EXTRA_LAYERS more layers each add /layerN.
The image is named NAME (io.containerd.image.name) for the machine's platform.
"""
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

out, name = sys.argv[1], sys.argv[2]
extra = int(sys.argv[3]) if len(sys.argv) > 3 else 0
os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)


def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def layer(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            info.uid = info.gid = 0
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, data, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755 if kind == "exe" else 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


with open("/bin/busybox", "rb") as f:
    busybox = f.read()
layers = [
    layer(
        [("bin", "dir", None), ("bin/busybox", "exe", busybox)]
        + [("bin/" + applet, "symlink", "busybox") for applet in ["sh", "cat", "ls", "echo", "test", "wc"]]
        + [("etc", "dir", None), ("etc/motd", "file", b"one\n"), ("etc/gone", "file", b"x\n"), ("tmp", "dir", None)]
    ),
    layer(
        [("etc", "dir", None), ("etc/motd", "file", b"two\n"), ("etc/.wh.gone", "file", b""),
         ("newdir", "dir", None), ("newdir/file", "file", b"new\n")]
    ),
] + [layer([("layer%d" % n, "file", b"%d\n" % n)]) for n in range(extra)]

descriptors, diff_ids = [], []
for data in layers:
    digest, size = blob(data)
    descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
    diff_ids.append(digest)
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
config = {"architecture": arch, "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids}}
config_digest, config_size = blob(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": config_size},
            "layers": descriptors}
manifest_digest, manifest_size = blob(json.dumps(manifest).encode())
index = {"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
    "platform": {"architecture": arch, "os": "linux"},
    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}]}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
