"""Failures through the whole download -> prepare path: clear errors, and a cache left consistent."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import DatasetNotPreparedError, get_dataset_config, load_dataset
from apgbench.datasets.download import ChecksumError, DownloadError
from apgbench.datasets.extract import UnsafeArchiveError
from apgbench.datasets.manage import (
    ManualDatasetError,
    download_dataset,
    import_dataset,
    manual_instructions,
    read_manifest,
    verify_dataset,
)
from apgbench.datasets.readers import ReaderError

from ._helpers import disks, fetch_and_prepare, published, sha256, write, zip_tree

pytestmark = pytest.mark.network


def _dsb_tree(tmp_path, n=2, shape=(32, 32)):
    src = tmp_path / "src" / "dsb2018" / "test"
    for i in range(n):
        labels = disks(shape, 3, seed=i)
        write(src / "images" / f"im{i}.tif", (labels * 40).astype(np.uint8))
        write(src / "masks" / f"im{i}.tif", labels)
    return src


def _state(data_root, dataset_id="dsb"):
    folder = data_root / dataset_id
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def test_wrong_hash_in_config(tmp_path, server):
    _dsb_tree(tmp_path)
    config = published("dsb", server, {"dsb2018.zip": zip_tree(tmp_path / "src", tmp_path / "d.zip")})
    bad = config.source.files[0].model_copy(update={"sha256": "1" * 64})
    config = config.model_copy(update={"source": config.source.model_copy(update={"files": [bad]})})
    with pytest.raises(ChecksumError, match="dsb2018.zip.*1{64}.*" + sha256(tmp_path / "d.zip")):
        fetch_and_prepare(config, tmp_path / "data")
    assert _state(tmp_path / "data") in ([".lock", "raw"], [".lock"])  # nothing else: no partial file
    with pytest.raises(DatasetNotPreparedError, match="apgbench datasets download dsb"):
        load_dataset(config, tmp_path / "data")


def test_server_error_and_truncation_leave_cache_empty(tmp_path, server):
    _dsb_tree(tmp_path)
    config = published("dsb", server, {"dsb2018.zip": zip_tree(tmp_path / "src", tmp_path / "d.zip")})
    for prefix in ("status500", "truncate"):
        url = config.source.files[0].url.rsplit("/", 1)
        remote = config.source.files[0].model_copy(update={"url": f"{url[0]}/{prefix}/{url[1]}"})
        broken = config.model_copy(update={"source": config.source.model_copy(update={"files": [remote]})})
        with pytest.raises(DownloadError):
            fetch_and_prepare(broken, tmp_path / "data")
        assert not any(p.is_file() for p in (tmp_path / "data" / "dsb" / "raw").glob("*"))
    # the same cache then works once the server behaves
    assert len(fetch_and_prepare(config, tmp_path / "data")) == 2


def test_zip_slip_archive_is_refused(tmp_path, server):
    import zipfile

    archive = zip_tree(_dsb_tree(tmp_path).parent.parent, tmp_path / "d.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../../escaped.txt", b"x")
    config = published("dsb", server, {"dsb2018.zip": archive})
    with pytest.raises(UnsafeArchiveError, match=r"escaped.txt"):
        fetch_and_prepare(config, tmp_path / "data")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert "extracted" not in _state(tmp_path / "data") and "prepared.h5" not in _state(tmp_path / "data")


def test_unreadable_image_names_the_file(tmp_path, server):
    src = _dsb_tree(tmp_path)
    (src / "images" / "im1.tif").write_bytes(b"this is not a tiff")
    config = published("dsb", server, {"dsb2018.zip": zip_tree(tmp_path / "src", tmp_path / "d.zip")})
    with pytest.raises(ReaderError, match=r"im1.tif"):
        fetch_and_prepare(config, tmp_path / "data")
    state = _state(tmp_path / "data")
    assert (
        "raw/dsb2018.zip" in state
        and "prepared.h5" not in state
        and not any(s.startswith("extracted") for s in state)
        and not any(s.endswith(".partial") for s in state)
    )


def test_label_shape_mismatch(tmp_path, server):
    src = _dsb_tree(tmp_path)
    write(src / "masks" / "im0.tif", np.zeros((30, 32), np.uint16))
    config = published("dsb", server, {"dsb2018.zip": zip_tree(tmp_path / "src", tmp_path / "d.zip")})
    with pytest.raises(ReaderError, match=r"im0.tif.*\(32, 32\).*\(30, 32\)"):
        fetch_and_prepare(config, tmp_path / "data")
    assert "prepared.h5" not in _state(tmp_path / "data")


def test_manual_download_prints_instructions(tmp_path):
    config = get_dataset_config("tissuenet")
    with pytest.raises(ManualDatasetError) as info:
        download_dataset(config, tmp_path)
    text = str(info.value)
    assert (
        "datasets.deepcell.org" in text and "apgbench datasets import tissuenet" in text and "\n" not in text
    )
    assert text == manual_instructions(config)


def test_import_verifies_checksum_and_no_verify_warns(tmp_path):
    src = _dsb_tree(tmp_path)
    archive = zip_tree(src.parent.parent, tmp_path / "dsb2018.zip")  # not the published file
    config = get_dataset_config("dsb")
    with pytest.raises(ChecksumError, match="--no-verify"):
        import_dataset(config, archive, tmp_path / "data")
    with pytest.warns(UserWarning, match="differs from the published file"):
        _, notes = import_dataset(config, archive, tmp_path / "data", verify=False)
    assert len(load_dataset(config, tmp_path / "data")) == 2 and notes
    rows = verify_dataset(config, tmp_path / "data")
    assert all(ok for _, ok, _ in rows) and "differs" in rows[0][2]
    (tmp_path / "data" / "dsb" / "raw" / "dsb2018.zip").write_bytes(b"tampered")
    assert not verify_dataset(config, tmp_path / "data")[0][1]


def test_import_of_an_unpacked_folder(tmp_path):
    _dsb_tree(tmp_path)
    config = get_dataset_config("dsb")
    out, _ = import_dataset(config, tmp_path / "src", tmp_path / "data")
    assert out.exists() and len(load_dataset(config, tmp_path / "data")) == 2
    with pytest.raises(ReaderError, match="Expected one folder matching 'dsb2018'"):
        import_dataset(config, tmp_path / "data", tmp_path / "data2")


def test_multi_file_dataset_imported_one_file_at_a_time(tmp_path):
    images, masks = tmp_path / "i" / "images", tmp_path / "m" / "masks"
    for i in range(26):
        labels = disks((24, 24), 4, seed=i, radius=2)
        write(images / f"x{i:02d}.tif", (labels * 9).astype(np.uint16))
        write(masks / f"x{i:02d}.png", np.dstack([labels.astype(np.uint8)] * 4))
    config = get_dataset_config("u20s")
    first = zip_tree(tmp_path / "i", tmp_path / "images.zip")
    with pytest.raises(FileNotFoundError, match=r"still needs masks.zip"), pytest.warns(UserWarning):
        import_dataset(config, first, tmp_path / "data", verify=False)
    with pytest.warns(UserWarning, match="masks.zip"):
        import_dataset(
            config, zip_tree(tmp_path / "m", tmp_path / "masks.zip"), tmp_path / "data", verify=False
        )
    assert set(read_manifest(config, tmp_path / "data")["raw"]) == {"images.zip", "masks.zip"}
    assert [s.image_id for s in load_dataset(config, tmp_path / "data")] == ["images_x25"]
