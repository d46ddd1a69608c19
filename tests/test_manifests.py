"""The dataset manifests: every shipped one loads, matches docs/protocol.md, "Data", and bad ones fail with
the key named."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from repro.data.manifests import get_manifest, list_datasets, load_manifest, parse_manifest
from repro.errors import ReproError
from repro.paths import PROJECT_ROOT

PROTOCOL_DIV2K_TEXT = """
DIV2K_train_HR.zip 3530603713 9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335
DIV2K_valid_HR.zip 448993893 20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc
DIV2K_train_LR_bicubic_X2.zip 925390592 a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850
DIV2K_train_LR_bicubic_X3.zip 427847282 ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a
DIV2K_train_LR_bicubic_X4.zip 246914039 f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a
DIV2K_valid_LR_bicubic_X2.zip 117763600 60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57
DIV2K_valid_LR_bicubic_X3.zip 54513392 04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3
DIV2K_valid_LR_bicubic_X4.zip 31505881 a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553
"""  # docs/protocol.md, "Data": file, bytes, sha256
PROTOCOL_DIV2K = {
    f: (int(n), h) for f, n, h in (line.split() for line in PROTOCOL_DIV2K_TEXT.strip().splitlines())
}


def test_list_datasets():
    assert list_datasets() == ["benchmark", "div2k", "sample", "t91"]
    for name in list_datasets():
        m = get_manifest(name)
        assert m.name == name and m.description and m.license and m.source


def test_unknown_dataset_lists_valid_names():
    valid = "valid choices: benchmark, div2k, sample, t91"
    with pytest.raises(ReproError, match=f"unknown dataset 'imagenet'; {valid}"):
        get_manifest("imagenet")
    assert get_manifest("DIV2K").name == "div2k"


def test_div2k_matches_protocol():
    m = get_manifest("div2k")
    assert {a.file: (a.size, a.sha256) for a in m.archives} == PROTOCOL_DIV2K
    for a in m.archives:
        assert a.format == "zip" and a.extract_to == "DIV2K"
        assert a.urls[0] == f"http://data.vision.ee.ethz.ch/cvl/DIV2K/{a.file}"
    assert m.size == sum(s for s, _ in PROTOCOL_DIV2K.values())
    counts = {f.path: f.count for f in m.folders}
    assert counts["DIV2K/DIV2K_train_HR"] == 800 and counts["DIV2K/DIV2K_train_LR_bicubic/X4"] == 800
    assert counts["DIV2K/DIV2K_valid_HR"] == 100 and len(counts) == 8


def test_benchmark_manifest():
    m = get_manifest("benchmark")
    (tar,) = m.archives
    assert tar.file == "benchmark.tar" and tar.format == "tar" and tar.extract_to == "."
    assert tar.md5 == "4ace41d33c2384b97e6b320cd0afd6ba" and tar.sha256 is None and tar.size is None
    assert all(u.endswith("/benchmark.tar") for u in tar.urls)
    counts = {f.path: f.count for f in m.folders}
    for s, n in {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}.items():
        assert counts[f"benchmark/{s}/HR"] == n
        scales = (4,) if s == "Urban100" else (2, 3, 4)
        for x in scales:
            assert counts[f"benchmark/{s}/LR_bicubic/X{x}"] == n
    # every folder's count is the number of digests listed in it
    per_folder: dict[str, int] = {}
    for p in m.pixels:
        per_folder[p.path.rsplit("/", 1)[0]] = per_folder.get(p.path.rsplit("/", 1)[0], 0) + 1
    assert per_folder == counts and len(m.pixels) == 676
    b100 = [p for p in m.pixels if p.path.startswith("benchmark/B100/HR/")]
    assert len(b100) == 100 and all(p.crop in ((320, 480), (480, 320)) and p.crop_sha256 for p in b100)
    assert all(p.crop is None for p in m.pixels if not p.path.startswith("benchmark/B100/HR/"))
    bridge = next(p for p in m.pixels if p.path == "benchmark/Set14/HR/bridge.png")
    assert len(bridge.shape) == 2  # grayscale stays single-channel


def test_t91_manifest():
    m = get_manifest("t91")
    assert len(m.archives) == 91 and all(a.format == "file" and a.extract_to == "T91" for a in m.archives)
    assert all(a.sha256 and a.size for a in m.archives)
    sha = {a.file: a.sha256 for a in m.archives}
    assert sha["t36.bmp"] == sha["t65.bmp"]  # byte-identical in the original set
    assert len(set(sha.values())) == 90
    assert {f.path: (f.count, f.pattern) for f in m.folders} == {"T91": (91, "*.bmp")}
    assert len(m.pixels) == 91


def test_sample_manifest_is_embedded():
    m = get_manifest("sample")
    assert m.embedded and not m.archives and m.size == 0  # nothing to download
    assert sorted({i.split for i in m.images}) == ["test", "train"]


BASE = {"name": "toy", "description": "d", "license": "l", "source": "s"}
GOOD_ARCHIVE = {"urls": ["http://x/toy.zip"], "sha256": "0" * 64}


@pytest.mark.parametrize(("change", "message"), [
    ({"archives": {"toy.zip": {"urls": ["http://x/toy.zip"]}}}, "needs a checksum"),
    ({"archives": {"toy.zip": {**GOOD_ARCHIVE, "sha256": "abc"}}}, "sha256 must be 64"),
    ({"archives": {"toy.zip": {**GOOD_ARCHIVE, "shasum": "x"}}}, r"unknown key\(s\) \['shasum'\]"),
    ({"archives": {"toy.zip": {**GOOD_ARCHIVE, "extract_to": "../up"}}}, "relative POSIX path"),
    ({"archives": {"toy.zip": {**GOOD_ARCHIVE, "urls": ["ftp://x"]}}}, "needs http"),
    ({"archives": {"toy.zip": {**GOOD_ARCHIVE, "format": "rar"}}}, "unknown format 'rar'"),
    ({"archives": {"toy.zip": {**GOOD_ARCHIVE, "size": -1}}}, "size must be positive"),
    ({"archives": {"toy.zip": GOOD_ARCHIVE}, "folders": {"/abs": {"count": 1}}}, "relative POSIX path"),
    ({"archives": {"toy.zip": GOOD_ARCHIVE}, "folders": {"a": {"count": 0}}}, "count must be positive"),
    ({"archives": {"toy.zip": GOOD_ARCHIVE}, "pixels": {"a.png": {"shape": [2], "sha256": "0" * 64}}},
     "positive ints"),
    ({"archives": {"toy.zip": GOOD_ARCHIVE},
      "pixels": {"a.png": {"shape": [2, 2], "sha256": "0" * 64, "crop": [1, 1]}}}, "go together"),
    ({"mirrors": ["http://x/no-placeholder"], "archives": {"toy.zip": {"sha256": "0" * 64}}}, "{file}"),
    ({}, "either embedded"),
    ({"descripton": "typo"}, r"unknown key\(s\) \['descripton'\]"),
])
def test_bad_manifest_names_the_problem(change, message):
    with pytest.raises(ReproError, match=message) as err:
        parse_manifest({**BASE, **change}, source="toy.toml")
    assert "manifest toy.toml" in str(err.value)


def test_mirror_templates_follow_own_urls():
    m = parse_manifest({**BASE, "mirrors": ["https://m1/{file}", "http://m2/d/{file}"],
                        "archives": {"a.tar.gz": {"urls": ["https://own/a.tar.gz"], "md5": "0" * 32}}})
    assert m.archives[0].urls == ("https://own/a.tar.gz", "https://m1/a.tar.gz", "http://m2/d/a.tar.gz")
    assert m.archives[0].format == "tar" and m.archives[0].extract_to == "."


def test_file_name_must_match(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text('name = "toy"\ndescription = "d"\nlicense = "l"\nsource = "s"\nembedded = true\n')
    with pytest.raises(ReproError, match="must match the file name 'other'"):
        load_manifest(path)
    path.write_text("name = [")
    with pytest.raises(ReproError, match="not valid TOML"):
        load_manifest(path)


@pytest.mark.data
@pytest.mark.slow
def test_generated_sections_are_reproducible():
    """scripts/make_pixel_digests.py run on REPRO_DATA gives exactly what the manifests hold."""
    root = os.environ.get("REPRO_DATA")
    if not root or not (Path(root) / "benchmark").is_dir() or not (Path(root) / "T91").is_dir():
        pytest.skip("REPRO_DATA is unset or lacks benchmark/ and T91/: the real images are needed")
    spec = importlib.util.spec_from_file_location("make_pixel_digests",
                                                  PROJECT_ROOT / "scripts/make_pixel_digests.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name, section in script.SECTIONS.items():
        manifest = PROJECT_ROOT / "data_manifests" / f"{name}.toml"
        assert script.rewrite(manifest, section(Path(root))) == manifest.read_text(), name
