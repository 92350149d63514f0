"""Crafted records written through the real results store, for report tests whose answers are known."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apgbench.methods import available_methods
from apgbench.results import THRESHOLD_COLUMNS, RecordWriter, RunInfo, now, record_dir

REPO = Path(__file__).resolve().parents[2]

# Dataset-mean mSA of the crafted table: each dataset has two images at mean - 0.1 and mean + 0.1, except where
# noted in CRAFTED_IMAGE_OFFSETS. None = the method never ran on the dataset.
CRAFTED = {
    ("nuclei-fluo", "dsb"): {"amg": 0.30, "ais": 0.60, "apg": 0.65, "apg-bd": 0.62, "cellpose-sam": 0.70},
    ("nuclei-fluo", "u20s"): {"amg": 0.20, "ais": 0.50, "apg": 0.50, "apg-bd": 0.40, "cellpose-sam": 0.45},
    ("cells-fluo", "tissuenet"): {
        "amg": 0.10,
        "ais": 0.40,
        "apg": 0.44,
        "apg-bd": None,
        "cellpose-sam": 0.50,
    },
}


def write_record(
    root,
    dataset: str,
    method: str,
    domain: str,
    values,
    *,
    run_key: str = "default",
    errors: dict[str, str] | None = None,
    n_images: int | None = None,
    predictions=None,
    fingerprint: str | None = None,
) -> Path:
    """Store one record whose images have the given mSA (every SA(t) equal to it), like a real run would.

    ``values`` maps image id -> mSA; ``errors`` image id -> message (a failed image); ``predictions`` image
    id -> label image.
    """
    directory = record_dir(root, method, dataset, run_key)
    with RecordWriter(directory) as writer:
        for image_id, msa in values.items():
            row = {
                "dataset": dataset,
                "method": method,
                "run_key": run_key,
                "image_id": image_id,
                "msa": msa,
                **{c: msa for c in THRESHOLD_COLUMNS},
                "n_true": 10,
                "n_pred": 10,
                "seconds": 0.5,
                "peak_mem_mb": 100.0,
                "error": None,
            }
            writer.add(image_id, (predictions or {}).get(image_id), row)
        for image_id, message in (errors or {}).items():
            row = {
                "dataset": dataset,
                "method": method,
                "run_key": run_key,
                "image_id": image_id,
                "msa": None,
                "n_true": 10,
                "n_pred": 0,
                "seconds": 0.1,
                "peak_mem_mb": 50.0,
                "error": message,
            }
            writer.add(image_id, None, row)
        info = RunInfo(
            dataset=dataset,
            domain=domain,
            method=method,
            run_key=run_key,
            params={},
            apgbench_version="test",
            started=now(),
            complete=True,
            dataset_fingerprint=fingerprint,
            n_images=n_images or len(values) + len(errors or {}),
        )
        writer.finalize(info)
    return directory


def write_crafted(root) -> None:
    """The whole :data:`CRAFTED` table, two images per (dataset, method)."""
    for (domain, dataset), methods in CRAFTED.items():
        for method, mean in methods.items():
            if mean is not None:
                write_record(root, dataset, method, domain, {"img-0": mean - 0.1, "img-1": mean + 0.1})


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """A registry holding dsb (of the methods, only cellpose-sam trained on it) and tissuenet; u20s is left out
    on purpose."""
    target = tmp_path / "configs" / "datasets"
    target.mkdir(parents=True)
    for name in (
        "dsb",
        "tissuenet",
        "synthetic-nuclei",
        "synthetic-cells",
        "synthetic-labelfree",
        "synthetic-histo",
    ):
        source = REPO / "configs" / "datasets" / f"{name}.yaml"
        if not source.exists():
            pytest.skip(f"configs/datasets/{name}.yaml is absent")
        shutil.copy(source, target / source.name)
    for name, cls in available_methods().items():  # the trained-on fact lives in each method's metadata
        trained = cls.meta.trained_on - {"dsb"} | ({"dsb"} if name == "cellpose-sam" else set())
        monkeypatch.setattr(cls, "meta", cls.meta.model_copy(update={"trained_on": trained}))
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(tmp_path / "configs"))
    return target
