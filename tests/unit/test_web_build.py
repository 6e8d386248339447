"""web/build.py: the dashboard build without node — lockfile pin, integrity, extraction."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

_WEB = Path(__file__).resolve().parents[2] / "web"


def _load() -> ModuleType:
    # web/ is not a package: web/build.py runs as a script under the system Python.
    spec = importlib.util.spec_from_file_location("web_build", _WEB / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["web_build"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


wb = _load()

ESM = b"export default function uPlot() {}\n"
CSS = b".uplot { display: block }\n"


def tarball(files: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def sri(data: bytes, alg: str = "sha512") -> str:
    return f"{alg}-" + base64.b64encode(hashlib.new(alg, data).digest()).decode()


GOOD = tarball({"package/package.json": b"{}", "package/dist/uPlot.esm.js": ESM,
                "package/dist/uPlot.min.css": CSS, "package/dist/uPlot.iife.js": b"x"})


def test_matching_sha512_passes() -> None:
    assert wb.check_integrity(GOOD, sri(GOOD)) == "sha512"


def test_one_changed_byte_fails() -> None:
    tampered = GOOD[:-1] + bytes([GOOD[-1] ^ 1])
    with pytest.raises(wb.IntegrityError, match="sha512 mismatch"):
        wb.check_integrity(tampered, sri(GOOD))


def test_strongest_algorithm_decides() -> None:
    # A right sha256 does not rescue a wrong sha512 (npm's ssri picks the strongest).
    with pytest.raises(wb.IntegrityError):
        wb.check_integrity(GOOD, f"{sri(GOOD, 'sha256')} {sri(b'other')}")
    assert wb.check_integrity(GOOD, f"{sri(b'x', 'sha256')} {sri(GOOD)}") == "sha512"


@pytest.mark.parametrize("integrity", ["", "sha1-" + base64.b64encode(
    hashlib.sha1(GOOD).digest()).decode(), "md5-abc", "garbage"])
def test_no_supported_hash_fails(integrity: str) -> None:
    with pytest.raises(wb.IntegrityError, match="no sha512"):
        wb.check_integrity(GOOD, integrity)


def test_extract_takes_only_the_two_files() -> None:
    assert wb.extract(GOOD) == {"uPlot.esm.js": ESM, "uPlot.min.css": CSS}


def test_extract_ignores_links_and_reports_missing_files() -> None:
    data = tarball({"package/dist/uPlot.esm.js": ESM}, links=("package/dist/uPlot.min.css",))
    with pytest.raises(wb.BuildError, match=r"lacks package/dist/uPlot\.min\.css"):
        wb.extract(data)
    with pytest.raises(wb.BuildError, match="cannot be read"):
        wb.extract(b"not a tarball")


def _web(tmp: Path, integrity: str, resolved: str | None = "https://r.example/u.tgz") -> Path:
    (tmp / "src" / "js").mkdir(parents=True)
    (tmp / "src" / "index.html").write_text("<html></html>")
    (tmp / "src" / "js" / "app.js").write_text("import '../vendor/uPlot.esm.js';")
    entry = {"version": "1.6.32", "integrity": integrity} | (
        {"resolved": resolved} if resolved else {})
    (tmp / "package-lock.json").write_text(json.dumps(
        {"lockfileVersion": 3, "packages": {"node_modules/uplot": entry}}))
    return tmp


def test_build_writes_src_and_vendor(tmp_path: Path) -> None:
    web = _web(tmp_path, sri(GOOD))
    urls: list[str] = []
    pin = wb.build(web, fetch=lambda url: urls.append(url) or GOOD)
    assert urls == ["https://r.example/u.tgz"] and pin.version == "1.6.32"
    assert (web / "dist" / "index.html").read_text() == "<html></html>"
    assert (web / "dist" / "js" / "app.js").exists()
    assert (web / "dist" / "vendor" / "uPlot.esm.js").read_bytes() == ESM
    assert (web / "dist" / "vendor" / "uPlot.min.css").read_bytes() == CSS
    assert sorted(p.name for p in web.iterdir()) == ["dist", "package-lock.json", "src"]


def test_mismatch_leaves_the_old_dist(tmp_path: Path) -> None:
    web = _web(tmp_path, sri(b"what the lockfile pinned"))
    (web / "dist").mkdir()
    (web / "dist" / "index.html").write_text("old")
    with pytest.raises(wb.IntegrityError):
        wb.build(web, fetch=lambda url: GOOD)
    assert (web / "dist" / "index.html").read_text() == "old"
    assert not (web / "dist.tmp").exists()


def test_main_fails_loudly_on_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    web = _web(tmp_path, sri(b"pinned"))
    monkeypatch.setattr(wb, "download", lambda url: GOOD)
    assert wb.main([str(web)]) == 1
    assert "INTEGRITY CHECK FAILED" in capsys.readouterr().err
    assert not (web / "dist").exists()


def test_lockfile_without_resolved_uses_the_registry_path(tmp_path: Path) -> None:
    web = _web(tmp_path, sri(GOOD), resolved=None)
    assert wb.locked(web / "package-lock.json").url == (
        "https://registry.npmjs.org/uplot/-/uplot-1.6.32.tgz")


def test_the_repository_lockfile_pins_uplot_by_sha512() -> None:
    pin = wb.locked(_WEB / "package-lock.json")
    assert pin.integrity.startswith("sha512-")
    assert pin.url == f"https://registry.npmjs.org/uplot/-/uplot-{pin.version}.tgz"
    package = json.loads((_WEB / "package.json").read_text())
    assert package["dependencies"]["uplot"] == pin.version
