"""Build the dashboard (``web/dist``) from the npm lockfile without node or npm.

``make setup`` runs this with the system Python (standard library only), so a
production host needs no nodejs or npm for the dashboard. ``web/package.json``
and ``web/package-lock.json`` stay the pin, managed with npm tooling as before;
this script only reads the lockfile. For uPlot it downloads the tarball at the
lockfile's ``resolved`` URL, checks it against the lockfile's ``integrity``
(Subresource Integrity, ``sha512-<base64>``) and stops with an error on any
mismatch, takes just ``dist/uPlot.esm.js`` and ``dist/uPlot.min.css`` out of it,
and writes ``web/dist`` (our ``web/src`` plus ``vendor/`` with those two files)
beside the old one before swapping it in: a failed or interrupted build never
leaves a half-written dashboard.

Usage: ``python3 web/build.py [WEB_DIR]`` (default: this file's directory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "uplot"
# Tarball member (npm packs everything under package/) -> name in web/dist/vendor.
VENDOR_FILES = {
    "package/dist/uPlot.esm.js": "uPlot.esm.js",
    "package/dist/uPlot.min.css": "uPlot.min.css",
}
# Strongest first; npm itself prefers the strongest algorithm a lockfile names.
# sha1 (old lockfiles) is not accepted: it no longer pins content.
_ALGORITHMS = ("sha512", "sha384", "sha256")
_REGISTRY = "https://registry.npmjs.org"
_MAX_TARBALL = 16 * 1024 * 1024


class BuildError(Exception):
    """The dashboard cannot be built; the message says why and what to do."""


class IntegrityError(BuildError):
    """A downloaded tarball does not match the lockfile's integrity."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Locked:
    """One package as the lockfile pins it."""

    name: str
    version: str
    url: str
    integrity: str


def locked(lockfile: Path, name: str = PACKAGE) -> Locked:
    """The pinned version, tarball URL and integrity of ``name`` in a v2/v3 lockfile."""
    try:
        entry = json.loads(lockfile.read_text())["packages"][f"node_modules/{name}"]
        version, integrity = entry["version"], entry["integrity"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"{lockfile}: no pinned {name} with an integrity ({exc!r}); "
                         "regenerate it with npm install --package-lock-only") from None
    # A lockfile written with omit-lockfile-registry-resolved has no URL: npm then
    # fetches from the registry's conventional path, and so do we.
    url = entry.get("resolved") or f"{_REGISTRY}/{name}/-/{name}-{version}.tgz"
    return Locked(name=name, version=version, url=url, integrity=integrity)


def check_integrity(data: bytes, integrity: str) -> str:
    """Check ``data`` against an SRI string; return the algorithm that matched.

    The string may hold several space-separated ``alg-base64`` hashes: the
    strongest supported algorithm decides, as in npm (ssri).

    Raises:
        IntegrityError: no supported hash, or the digest differs.
    """
    hashes: dict[str, list[str]] = {}
    for token in integrity.split():
        alg, _, digest = token.partition("-")
        hashes.setdefault(alg.lower(), []).append(digest.split("?", 1)[0])
    for alg in _ALGORITHMS:
        if alg in hashes:
            actual = base64.b64encode(hashlib.new(alg, data).digest()).decode()
            if any(hmac.compare_digest(actual, want) for want in hashes[alg]):
                return alg
            raise IntegrityError(f"{alg} mismatch: the lockfile pins {hashes[alg][0]}, "
                                 f"the download is {actual}")
    raise IntegrityError(f"no {'/'.join(_ALGORITHMS)} hash in integrity {integrity!r}")


def extract(data: bytes, members: Mapping[str, str] = VENDOR_FILES) -> dict[str, bytes]:
    """The named regular files of a gzipped tarball, keyed by their new names."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                if info.name in members and info.isreg():
                    handle = tar.extractfile(info)
                    if handle is not None:
                        out[members[info.name]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"the tarball cannot be read: {exc}") from None
    missing = sorted(member for member, new in members.items() if new not in out)
    if missing:
        raise BuildError(f"the tarball lacks {', '.join(missing)}")
    return out


def download(url: str, attempts: int = 3) -> bytes:
    """The body at ``url`` (retried on network errors; at most 16 MiB)."""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data: bytes = response.read(_MAX_TARBALL + 1)
            if len(data) > _MAX_TARBALL:
                raise BuildError(f"{url}: larger than {_MAX_TARBALL} bytes")
            return data
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == attempts:
                raise BuildError(f"cannot download {url}: {exc}") from None
            time.sleep(2 * attempt)
    raise AssertionError("unreachable")


def write_dist(web: Path, vendor: Mapping[str, bytes]) -> None:
    """``web/src`` plus ``vendor/`` into ``web/dist.tmp``, then swapped in for ``web/dist``."""
    tmp, dist, old = web / "dist.tmp", web / "dist", web / "dist.old"
    shutil.rmtree(tmp, ignore_errors=True)
    # shutil.copy, not copy2: fresh mtimes, so make sees web/dist/index.html as built.
    shutil.copytree(web / "src", tmp, copy_function=shutil.copy)
    (tmp / "vendor").mkdir(exist_ok=True)
    for name, content in vendor.items():
        (tmp / "vendor" / name).write_bytes(content)
    shutil.rmtree(old, ignore_errors=True)
    if dist.exists():
        dist.rename(old)
    tmp.rename(dist)
    shutil.rmtree(old, ignore_errors=True)


def build(web: Path, fetch: Callable[[str], bytes] | None = None) -> Locked:
    """Build ``web/dist`` from ``web/src`` and the locked uPlot; return what was used."""
    pin = locked(web / "package-lock.json")
    data = (fetch or download)(pin.url)
    check_integrity(data, pin.integrity)
    write_dist(web, extract(data))
    return pin


def main(argv: list[str]) -> int:
    web = Path(argv[0]) if argv else Path(__file__).resolve().parent
    try:
        pin = build(web)
    except IntegrityError as exc:
        print(f"web/build.py: INTEGRITY CHECK FAILED for {PACKAGE}: {exc}\n"
              "The download does not match web/package-lock.json; nothing was written.",
              file=sys.stderr)
        return 1
    except BuildError as exc:
        print(f"web/build.py: {exc}", file=sys.stderr)
        return 1
    print(f"web/dist: web/src + {pin.name} {pin.version} ({pin.url}, integrity checked)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
