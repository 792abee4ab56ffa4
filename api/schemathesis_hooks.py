"""Schemathesis hook of the fuzz test (Tests/EndToEndTests/FuzzTests.swift).

`POST /v1/mounts` mounts a snapshot on any existing directory outside the daemon's state
root, so a generated target that happens to name a real directory of this machine (`/mnt`,
`/usr`, `/etc`, ...) would be mounted over. Before every request, a target that exists here
and is not inside the sandbox directory named by `VENEER_FUZZ_SANDBOX` is moved into it:
the same path below the sandbox, made a directory there when the original is one, so the
request still mounts, only somewhere harmless. Targets that do not exist are sent as
generated. Without `VENEER_FUZZ_SANDBOX` the hooks refuse to load.

`PUT /v1/snapshots/{key}/layer` takes OCI layers, which schemathesis cannot generate by
itself: its bodies are random bytes, or one of a few small real layers (a tar with a file,
a whiteout and an opaque marker; gzip-compressed for the gzip types).
"""

import gzip
import io
import os
import tarfile

import schemathesis
from hypothesis import strategies as st

SANDBOX = os.environ.get("VENEER_FUZZ_SANDBOX", "")
if not SANDBOX.startswith("/") or not os.path.isdir(SANDBOX):
    raise RuntimeError(
        "VENEER_FUZZ_SANDBOX must name an existing directory for the targets of POST /v1/mounts"
    )
SANDBOX = os.path.realpath(SANDBOX)


def _exists(path: str) -> bool:
    try:
        return os.path.lexists(path)
    except (ValueError, OSError):  # NUL bytes, names too long
        return False


def _is_normalized(path: str) -> bool:
    parts = path.split("/")
    return parts[0] == "" and all(part not in ("", ".", "..") for part in parts[1:])


def _sandboxed(target: str) -> str:
    inside = _is_normalized(target) and target.startswith(SANDBOX + "/")
    if inside or not _exists(target):
        return target
    moved = SANDBOX + target
    if _is_normalized(target) and os.path.isdir(target) and not os.path.islink(target):
        try:
            os.makedirs(moved, exist_ok=True)
        except OSError:  # for example below a read-only mount in the sandbox
            pass
    return moved


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.operation.method.upper() != "POST" or case.operation.path != "/v1/mounts":
        return
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("target"), str) and body["target"].startswith("/"):
        moved = _sandboxed(body["target"])
        if moved != body["target"]:
            case.body = {**body, "target": moved}


def _layer() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("etc/hostname", b"fuzz\n"), (".wh.gone", b""), ("var/.wh..wh..opq", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


_TAR = _layer()
_EMPTY = bytes(1024)
for _base in ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar"):
    schemathesis.openapi.media_type(_base, st.sampled_from([_TAR, _EMPTY]) | st.binary(max_size=4096))
    schemathesis.openapi.media_type(
        _base + "+gzip",
        st.sampled_from([gzip.compress(_TAR, mtime=0), gzip.compress(_EMPTY, mtime=0)]) | st.binary(max_size=4096),
    )
    schemathesis.openapi.media_type(_base + "+zstd", st.binary(max_size=4096))
