"""``apgbench datasets ...`` through the real Typer app, and a full run on an imported dataset."""

from __future__ import annotations

import shutil
import socket
import time

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.config import config_dir
from apgbench.datasets import get_dataset_config, list_datasets, load_dataset

from ._helpers import disks, sha256, write, zip_tree

runner = CliRunner()


def _dsb_archive(tmp_path, n=3):
    src = tmp_path / "src" / "dsb2018" / "test"
    for i in range(n):
        labels = disks((64, 64), 6, seed=i, radius=4)
        write(src / "images" / f"im{i}.tif", ((labels > 0) * 120 + 20).astype(np.uint8))
        write(src / "masks" / f"im{i}.tif", labels)
    return zip_tree(tmp_path / "src", tmp_path / "dsb2018.zip")


def test_list_and_info(roots):
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    for dataset_id in ("synthetic-nuclei", "dsb", "livecell", "tissuenet", "cytodark0"):
        assert dataset_id in result.output
    assert "manual" in result.output and "built-in" in result.output
    info = runner.invoke(app, ["datasets", "info", "yeaz"])
    assert info.exit_code == 0 and "seeded-random" in info.output and "random without a seed" in info.output


def test_errors_are_one_sentence(roots):
    result = runner.invoke(app, ["datasets", "info", "livecel"])
    assert (
        result.exit_code == 1 and "Unknown dataset 'livecel'" in result.output and "livecell" in result.output
    )
    manual = runner.invoke(app, ["datasets", "download", "cellpose"])
    assert (
        manual.exit_code == 1
        and "cellpose.org" in manual.output
        and "datasets import cellpose" in manual.output
    )
    assert "Traceback" not in manual.output and "Error: 1\n" not in manual.output


def test_import_verify_and_run(roots, tmp_path):
    _, data = roots
    archive = _dsb_archive(tmp_path)
    refused = runner.invoke(app, ["datasets", "import", "dsb", str(archive)])
    assert (
        refused.exit_code == 1 and "--no-verify" in refused.output and "Checksum mismatch" in refused.output
    )
    accepted = runner.invoke(app, ["datasets", "import", "dsb", str(archive), "--no-verify"])
    assert accepted.exit_code == 0, accepted.output
    assert "Warning" in accepted.output and "prepared at" in accepted.output
    samples = list(load_dataset("dsb", data))
    assert [s.image_id for s in samples] == ["test_images_im0", "test_images_im1", "test_images_im2"]
    assert runner.invoke(app, ["datasets", "verify", "dsb"]).exit_code == 0
    run = runner.invoke(app, ["run", "--dataset", "dsb", "--method", "classic"])
    assert run.exit_code == 0, run.output
    assert "over 3 images" in run.output
    (data / "dsb" / "prepared.h5").write_bytes(b"tampered")
    failed = runner.invoke(app, ["datasets", "verify", "dsb"])
    assert failed.exit_code == 1 and "FAILED" in failed.output and "Error: 1\n" not in failed.output


@pytest.mark.network
def test_download_through_mirror_with_custom_config_dir(roots, tmp_path, server, monkeypatch):
    archive = _dsb_archive(tmp_path)
    configs = tmp_path / "configs"
    (configs / "datasets").mkdir(parents=True)
    data = yaml.safe_load((config_dir() / "datasets" / "dsb.yaml").read_text())
    data["source"]["files"][0].update(
        url="https://unreachable.invalid/stardist/dsb2018.zip", sha256=sha256(archive)
    )
    (configs / "datasets" / "dsb.yaml").write_text(yaml.safe_dump(data))
    (server.root / "unreachable.invalid" / "stardist").mkdir(parents=True)
    shutil.copyfile(archive, server.root / "unreachable.invalid" / "stardist" / "dsb2018.zip")
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(configs))
    result = runner.invoke(app, ["datasets", "download", "dsb", "--mirror", server.url])
    assert result.exit_code == 0, result.output
    assert len(load_dataset("dsb")) == 3
    listing = runner.invoke(app, ["datasets", "list"])
    assert "yes" in listing.output


def test_every_config_is_listed():
    ids = {c.id for c in list_datasets() if not c.volumetric}  # 3D sets: tests/datasets/test_volumes.py
    assert len(ids) == 40 and get_dataset_config("ihc-tma").paper_id == "ihc_tma"


def _offline_configs(tmp_path, urls: list[str]):
    """A configs folder with one download dataset per URL (ids off-0, off-1, ...), from dsb's config."""
    configs = tmp_path / "configs"
    (configs / "datasets").mkdir(parents=True)
    base = yaml.safe_load((config_dir() / "datasets" / "dsb.yaml").read_text())
    for i, url in enumerate(urls):
        base["id"] = f"off-{i}"
        base["source"]["files"][0].update(url=url, sha256=None)
        (configs / "datasets" / f"off-{i}.yaml").write_text(yaml.safe_dump(base))
    return configs


def test_download_all_offline_stops_early(roots, tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    urls = [
        f"http://nonexistent.invalid/{i}.zip" if i % 2 else f"http://127.0.0.1:{port}/{i}.zip"
        for i in range(6)
    ]
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(_offline_configs(tmp_path, urls)))
    start = time.monotonic()
    result = runner.invoke(app, ["datasets", "download", "all"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "seems offline" in text and "the first 3 datasets" in text and "remaining 3 were not tried" in text
    assert "connections are refused and host names do not resolve" in text
    assert (
        "127.0.0.1 refused the connection" in text and "'nonexistent.invalid' could not be resolved" in text
    )
    assert "off-3:" not in text and "Not prepared: off-0, off-1, off-2, off-3, off-4, off-5." in text
    assert time.monotonic() - start < 5  # neither retried nor tried one by one


@pytest.mark.network
def test_download_all_goes_on_after_other_errors(roots, tmp_path, server, monkeypatch):
    # Server errors are not a sign of being offline: every dataset is tried.
    urls = [f"{server.url}/status404/{i}.zip" for i in range(4)]
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(_offline_configs(tmp_path, urls)))
    result = runner.invoke(app, ["datasets", "download", "all"])
    assert result.exit_code == 1 and "seems offline" not in result.output
    assert all(server.hits[f"status404/{i}.zip"] == 1 for i in range(4))  # each tried once: 404 not retried


def _configs_with(tmp_path, edits: dict[str, dict]):
    """A configs folder holding dsb.yaml and hpa-like copies with the given format edits (one file each)."""
    configs = tmp_path / "configs"
    (configs / "datasets").mkdir(parents=True)
    base = yaml.safe_load((config_dir() / "datasets" / "dsb.yaml").read_text())
    (configs / "datasets" / "dsb.yaml").write_text(yaml.safe_dump(base))
    for dataset_id, fmt in edits.items():
        (configs / "datasets" / f"{dataset_id}.yaml").write_text(
            yaml.safe_dump({**base, "id": dataset_id, "format": fmt})
        )
    return configs


def test_validate_catches_unknown_readers_and_options(tmp_path, monkeypatch):
    configs = _configs_with(
        tmp_path,
        {
            "bad-reader": {"reader": "imagefolder", "options": {"images": "*.tif"}},
            "bad-option": {"reader": "hdf5", "options": {"files": "*.h5", "raws": "raw", "labels": "y"}},
            "missing-option": {"reader": "npy-stack", "options": {"images": "x.npy"}},
            "bad-folder-option": {
                "reader": "image-folder",
                "options": {"images": "*.tif", "label_subs": ["a", "b"]},
            },
            "bad-set-option": {
                "reader": "image-folder",
                "options": {"sets": [{"images": "a/*.tif"}, {"images": "b/*.tif", "lables": "x"}]},
            },
        },
    )
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(configs))
    result = runner.invoke(app, ["validate"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in text
    folder = configs / "datasets"
    assert (
        f"{folder / 'bad-reader.yaml'}: unknown reader 'imagefolder' (did you mean 'image-folder'?)" in text
    )
    assert (
        f"{folder / 'bad-option.yaml'}: unknown option 'raws' for reader 'hdf5'; it accepts files, raw,"
        in text
    )
    assert f"{folder / 'missing-option.yaml'}: reader 'npy-stack' needs option 'labels'." in text
    assert f"{folder / 'bad-folder-option.yaml'}: bad options for reader 'image-folder'" in text
    assert "label_subs" in text and "lables" in text and "dsb.yaml" not in text


def test_validate_names_a_non_utf8_file(tmp_path, monkeypatch):
    configs = _configs_with(tmp_path, {})
    path = configs / "datasets" / "latin.yaml"
    path.write_bytes(
        (config_dir() / "datasets" / "dsb.yaml")
        .read_text()
        .replace("id: dsb", "id: latin")
        .replace("name:", "name: Caf\u00e9 ", 1)
        .encode("latin-1")
    )
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(configs))
    result = runner.invoke(app, ["validate"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and f"{path} is not UTF-8 text (byte 0xe9 at position" in text
    assert "Traceback" not in text
    listing = runner.invoke(app, ["datasets", "list"])  # every command names the file, not only validate
    assert listing.exit_code == 1 and f"{path} is not UTF-8 text" in " ".join(listing.output.split())


def test_the_shipped_configs_validate():
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("config", [c for c in list_datasets() if c.manual], ids=lambda c: c.id)
def test_manual_instructions_read_as_sentences(config):
    from apgbench.datasets.manage import manual_instructions

    text = manual_instructions(config)
    command = f"Then run `apgbench datasets import {config.id} PATH`"
    assert command in text and text.endswith(", which verifies and prepares it.")
    assert "file the data" not in text and "PATH the" not in text and "  " not in text and ". ." not in text
    tail = text.split(command)[1]
    if config.source.files:
        assert tail.startswith((", where PATH is the downloaded file", ", where PATH is a folder"))
    else:  # the instructions end by naming the folder, so PATH is "that folder"
        assert tail == " with that folder as PATH, which verifies and prepares it."
        assert "which then holds" in text.split(command)[0]
