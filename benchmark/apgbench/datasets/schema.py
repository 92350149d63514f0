"""Typed schema of a dataset config (one YAML per dataset in ``configs/datasets/``).

Unknown keys are rejected everywhere, so a typo in a YAML file is an error rather than a silent default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import ID_PATTERN

Domain = Literal["nuclei-fluo", "cells-fluo", "cells-labelfree", "nuclei-histo"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteFile(_Strict):
    """One file to download: where from, what it must hash to, and its name in the cache."""

    url: str
    sha256: str | None = Field(None, description="Hex digest; None only where the source publishes none.")
    filename: str
    size: str | None = Field(None, description="Approximate size, for `datasets list`.")
    extract: bool | None = Field(None, description="Unpack into the extraction folder; None = by file suffix.")

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"filename '{value}' must be a plain file name (no folders, no leading dot)")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
            raise ValueError("sha256 must be 64 lower-case hex characters")
        return value


class Source(_Strict):
    """Where the data comes from: generated in the package, downloaded, or obtained by hand."""

    kind: Literal["builtin", "download", "manual"]
    files: list[RemoteFile] = []
    instructions: str | None = Field(None, description="For manual datasets: what a person does, step by step.")
    homepage: str | None = None
    nested_archives: list[str] = Field(
        [], description="Globs (relative to the extraction folder) of archives inside archives to unpack too."
    )
    licence_note: str | None = Field(None, description="Access terms a user accepts (login, non-commercial).")

    @model_validator(mode="after")
    def _consistent(self) -> Source:
        if self.kind == "download" and not self.files:
            raise ValueError("a 'download' source needs at least one file")
        if self.kind == "manual" and not self.instructions:
            raise ValueError("a 'manual' source needs instructions")
        return self


class Format(_Strict):
    """Which reader turns the downloaded files into (image, labels) pairs, and its options."""

    reader: str
    options: dict[str, Any] = {}


class Split(_Strict):
    """The test-split rule: a sentence for people plus the machine-readable rule."""

    description: str
    rule: Literal["official", "all", "index", "seeded-random"] = "official"
    options: dict[str, Any] = {}
    seed: int | None = None
    deterministic_in_paper: bool = True

    @model_validator(mode="after")
    def _seeded(self) -> Split:
        if self.rule == "seeded-random" and self.seed is None:
            raise ValueError("a 'seeded-random' split needs a seed")
        if self.rule == "seeded-random" and not 0 < float(self.options.get("fraction", 0)) < 1:
            raise ValueError("a 'seeded-random' split needs options.fraction between 0 and 1")
        if self.rule == "index" and not {"start", "stop"} & set(self.options):
            raise ValueError("an 'index' split needs options.start and/or options.stop")
        return self


class Preparation(_Strict):
    """How the test split is turned into benchmark images (paper: 2D slices, 512x512 crop, object minimum)."""

    crop: int | None = 512
    crop_mode: Literal["center", "foreground-center"] = "center"
    min_objects: int | None = None
    slice_axis: int = 0
    channels: Literal["grey", "rgb", "two-channel", "pack", "as-is"] = "as-is"
    channel_options: dict[str, Any] = {}
    pad_to: int | None = Field(None, description="Zero-pad bottom/right up to this size (PanNuke).")
    resize: int | None = Field(None, description="Resize to size x size (HPA); labels with nearest neighbour.")
    background_label: int | None = Field(None, description="Label id that marks background; set to 0.")
    connected_components: bool = Field(False, description="Relabel labels as connected components.")
    drop_empty: bool = Field(True, description="Drop images whose labels are all background (the paper's code "
                             "does, except for the seven datasets it took straight from torch-em).")


class DatasetConfig(_Strict):
    """A benchmark dataset: identity, provenance, source, reader, split and preparation."""

    id: str
    name: str
    domain: Domain
    citation: str
    licence: str
    description: str = ""
    source: Source
    format: Format
    ndim: Literal[2, 3] = 2
    split: Split
    preparation: Preparation = Preparation()
    trained_on: list[str] = Field([], description="Method ids whose training data include this dataset's split.")
    prompt: str | None = Field(None, description="Text prompt for concept models (SAM3); default 'cell'.")
    n_images: int | None = Field(None, description="Expected number of prepared test images, where known.")
    paper_id: str | None = Field(None, description="The dataset's id in the paper's code (micro-sam), if different.")
    notes: str = ""

    @field_validator("id")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError(f"dataset id '{value}' must be kebab-case (lower-case letters, digits, '-')")
        return value

    @property
    def builtin(self) -> bool:
        """True for datasets generated inside the package (nothing to download)."""
        return self.source.kind == "builtin"

    @property
    def manual(self) -> bool:
        """True for datasets a person must obtain by hand."""
        return self.source.kind == "manual"
