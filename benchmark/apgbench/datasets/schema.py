"""Typed schema of a dataset config (one YAML per dataset in ``configs/datasets/``).

Unknown keys are rejected everywhere, so a typo in a YAML file is an error rather than a silent default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import DOMAINS, ID_PATTERN
from ..errors import UnknownIdError

Domain = Literal[DOMAINS]  # type: ignore[valid-type]  # the four domains, listed once in apgbench.config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteFile(_Strict):
    """One file to download: where from, what it must hash to, and its name in the cache."""

    url: str
    sha256: str | None = Field(None, description="Hex digest; None only where the source publishes none.")
    filename: str
    size: str | None = Field(None, description="Approximate size, for `datasets list`.")
    extract: bool | None = Field(
        None, description="Unpack into the extraction folder; None = by file suffix."
    )

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
    instructions: str | None = Field(
        None, description="For manual datasets: what a person does, step by step."
    )
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


class VolumeRule(_Strict):
    """The sub-volume rule of a 3D test set (``<id>-3d``): volumes are kept whole instead of sliced.

    Per test volume: keep its test slices (for ``index`` splits at ``level: slice``, the slices of this volume
    inside the window over the concatenated slices), then at most ``depth`` contiguous slices centred on the
    middle of the labelled z-range, then the preparation's ``crop`` in y/x (``crop_mode`` decided on the label
    projection along z); volumes with fewer than ``min_objects`` unique label values are dropped.
    """

    depth: int | None = Field(None, ge=1, description="Most slices kept per volume (None: all test slices).")


class Preparation(_Strict):
    """How the test split is turned into benchmark images (paper: 2D slices, 512x512 crop, object minimum)."""

    crop: int | None = 512
    crop_mode: Literal["center", "foreground-center"] = "center"
    min_objects: int | None = None
    slice_axis: int = 0
    channels: Literal["grey", "rgb", "two-channel", "pack", "as-is"] = "as-is"
    channel_options: dict[str, Any] = {}
    pad_to: int | None = Field(None, description="Zero-pad bottom/right up to this size (PanNuke).")
    resize: int | None = Field(None, description="Resize to size x size (HPA).")
    label_resize: Literal["nearest", "linear-truncate"] = Field(
        "nearest",
        description="How labels are resized: nearest neighbour, or (the paper's HPA code) bilinear "
        "interpolation truncated to the label dtype, which invents ids along object borders.",
    )
    background_label: int | None = Field(None, description="Label id that marks background; set to 0.")
    connected_components: bool = Field(False, description="Relabel labels as connected components.")
    volume: VolumeRule | None = Field(None, description="Keep 3D volumes whole (3D evaluation) by this rule.")
    drop_empty: bool = Field(
        True,
        description="Drop images whose labels are all background (the paper's code "
        "does, except for the seven datasets it took straight from torch-em).",
    )


class Variant(_Strict):
    """A documented alternative to a dataset's paper-faithful test split (e.g. corrected ground truth).

    Its options override the base config's ``format.options`` and ``preparation``; the variant is addressed
    as ``<id>@<name>`` everywhere (CLI, results, reports) and prepared into its own file.
    """

    description: str
    format_options: dict[str, Any] = {}
    preparation: dict[str, Any] = {}


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
    prompt: str | None = Field(None, description="Text prompt for concept models (SAM3); default 'cell'.")
    n_images: int | None = Field(None, description="Expected number of prepared test images, where known.")
    voxel_size: tuple[float, float, float] | None = Field(
        None,
        description="(z, y, x) voxel size of 3D data, any unit; its ratio is the anisotropy methods use.",
    )
    paper_id: str | None = Field(
        None, description="The dataset's id in the paper's code (micro-sam), if different."
    )
    notes: str = ""
    variants: dict[str, Variant] = Field(
        {}, description="Named alternatives to the paper's split (`id@name`)."
    )
    variant: str | None = Field(None, description="Set on a variant's config: which variant it is.")

    @field_validator("id")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not all(ID_PATTERN.match(part) for part in value.split("@", 1)):
            raise ValueError(
                f"dataset id '{value}' must be kebab-case (lower-case letters, digits, '-'), "
                "optionally followed by '@variant'"
            )
        return value

    @model_validator(mode="after")
    def _volume_needs_3d(self) -> DatasetConfig:
        if self.preparation.volume is not None and self.ndim != 3:
            raise ValueError("preparation.volume (3D evaluation) needs ndim: 3")
        return self

    @property
    def volumetric(self) -> bool:
        """True for 3D test sets: samples are (Z, Y, X) volumes, segmented and scored in 3D."""
        return self.preparation.volume is not None

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        for name in value:
            if not ID_PATTERN.match(name):
                raise ValueError(f"variant name '{name}' must be kebab-case")
        return value

    @model_validator(mode="after")
    def _variants_build(self) -> DatasetConfig:
        for (
            name
        ) in self.variants:  # a broken variant fails when the YAML is loaded, not when it is first used
            self.with_variant(name)
        return self

    @property
    def base_id(self) -> str:
        """The id without the ``@variant`` suffix (where the raw files are cached)."""
        return self.id.split("@", 1)[0]

    def with_variant(self, name: str) -> DatasetConfig:
        """The config of variant ``name``: id ``<id>@<name>``, options overridden, no paper comparison.

        Raises
        ------
        KeyError
            If the dataset has no such variant (the message lists the ones it has).
        """
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise UnknownIdError(f"Dataset '{self.id}' has no variant '{name}' (variants: {known}).")
        variant = self.variants[name]
        data = self.model_dump()
        data["format"]["options"] = {**data["format"]["options"], **variant.format_options}
        data["preparation"] = {**data["preparation"], **variant.preparation}
        data.update(
            id=f"{self.id}@{name}",
            variant=name,
            variants={},
            paper_id=None,
            n_images=None,
            name=f"{self.name} ({name})",
            description=variant.description,
        )
        return DatasetConfig.model_validate(data)

    @property
    def builtin(self) -> bool:
        """True for datasets generated inside the package (nothing to download)."""
        return self.source.kind == "builtin"

    @property
    def manual(self) -> bool:
        """True for datasets a person must obtain by hand."""
        return self.source.kind == "manual"
