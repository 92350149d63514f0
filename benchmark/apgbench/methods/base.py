"""The one interface every segmentation method implements.

A method is a subclass of :class:`Segmenter`. It declares its facts once in a :class:`~.meta.MethodMeta`
(class attribute ``meta``), loads its model once in :meth:`Segmenter.prepare`, and implements
:meth:`Segmenter._segment` for one image. The public, final :meth:`Segmenter.segment` validates the input and
the output, so wrappers cannot return malformed labels.
"""

from __future__ import annotations

import importlib.util
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, final

import numpy as np

from ..config import DOMAINS
from ..errors import InvalidInputError, UnavailableError
from .meta import MethodMeta


class MethodUnavailableError(UnavailableError):
    """A method cannot run here: its library, extra or weights are missing."""


class ParameterError(InvalidInputError):
    """A method parameter is unknown or has a value of the wrong type (a usage error: CLI exit code 2)."""


#: Parameters every method accepts for volumes: ``stitch`` (None, or a rule of
#: :data:`apgbench.methods.stitch.STITCH_RULES`) runs the method slice by slice and stitches (2D+stitch).
VOLUME_PARAMS: dict[str, Any] = {"stitch": None}


def check_params(
    method: str,
    defaults: dict[str, Any],
    params: dict[str, Any],
    choices: dict[str, tuple[Any, ...]] | None = None,
) -> dict[str, Any]:
    """Validate ``params`` against a method's ``defaults`` (and ``choices``) and return them normalised.

    Each value must have the type of its default: a bool for a bool, an int for an int, a finite number for
    a float (an int or a numeric string such as ``"1e-3"``, which YAML reads as text, becomes a float, so
    ``sigma=1`` and the default ``1.0`` select the same record), text or None for text, a list of the same
    length for a list. A default of ``None`` accepts None, text, a finite number or a list of finite numbers
    (an optional shape such as ``tile_shape``). A parameter named in ``choices`` (a method's
    ``param_choices``) must be one of its values.

    Raises
    ------
    ParameterError
        Naming the method, the parameter, the value and the expected type.
    """
    defaults = {**VOLUME_PARAMS, **defaults}  # every method takes ``stitch`` (volumes, 2D+stitch)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ParameterError(
            f"Method '{method}' has no parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(defaults)) or 'none'}."
        )
    checked = {key: _check_value(method, key, defaults[key], value) for key, value in params.items()}
    for key, allowed in (choices or {}).items():
        if key in checked and checked[key] not in allowed:
            raise ParameterError(
                f"Parameter '{key}' of '{method}' expects one of {', '.join(map(str, allowed))}, "
                f"got {checked[key]!r}."
            )
    return checked


def _check_value(method: str, key: str, default: Any, value: Any) -> Any:
    def fail(expected: str) -> ParameterError:
        return ParameterError(f"Parameter '{key}' of '{method}' expects {expected}, got {value!r}.")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if isinstance(default, float):
        number = _finite(value)
        if number is None:
            raise fail("a finite number")
        return number
    if isinstance(default, str):
        if value is not None and not isinstance(value, str):  # None: unset, where a method allows it (sam3)
            raise fail("text (quote numbers)")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise fail(f"a list of {len(default)} values like {list(default)}")
        return [_check_value(method, f"{key}[{i}]", d, v) for i, (d, v) in enumerate(zip(default, value))]
    if default is None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)):  # an optional shape such as tile_shape=384,384 or n_tiles=2,2
            if not value or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value
            ):
                raise fail("none, text, a finite number or a list of finite numbers")
            return list(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail("none, text, a finite number or a list of finite numbers")
        return value
    return value  # a default of another type (dict...): the method checks it


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, lists, non-numeric text, nan and overflow to inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def missing_modules(modules: tuple[str, ...] | list[str]) -> list[str]:
    """Return the import names in ``modules`` that cannot be found, without importing them."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


# Extras that pip cannot install next to the others: the command that sets up their own environment.
INSTALL_COMMANDS = {
    "cellpose3": "bash scripts/install_cellpose3_env.sh (cellpose 3 needs its own environment)"
}


def install_hint(cls: type[Segmenter]) -> str:
    """What to run to make a method's libraries available (``run pip install "apgbench[sam]"``)."""
    if cls.extra in INSTALL_COMMANDS:
        return f"run {INSTALL_COMMANDS[cls.extra]}"
    return f'run pip install "apgbench[{cls.extra}]"' if cls.extra else "install them"


def missing_text(missing: list[str]) -> str:
    """``torch and segment_anything, which are not installed`` (grammar for one or many)."""
    names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    return f"{names}, which {'is' if len(missing) == 1 else 'are'} not installed"


class Segmenter(ABC):
    """Base class of all instance-segmentation methods.

    Parameters
    ----------
    **params
        Overrides of :attr:`default_params`. Unknown names are an error.

    Attributes
    ----------
    meta : MethodMeta
        Everything apgbench knows about the method (id, extra, paper row, table order, trained-on datasets,
        model per domain, 3D support, weights status). ``name``, ``description``, ``extra``, ``requires``
        and ``supports_3d`` are read-only copies of its fields, set when the class is created. Methods whose
        ``supports_3d`` is not ``none`` implement :meth:`_segment_volume`.
    default_params : dict
        The method's parameters with the paper's defaults.

    Notes
    -----
    Usage follows one pattern: build once, prepare once, segment many images::

        with get_method("classic")() as method:
            method.prepare(device="cpu", domain="nuclei-fluo")
            labels = method.segment(image)
    """

    meta: ClassVar[MethodMeta]
    default_params: ClassVar[dict[str, Any]] = {}
    #: Parameters restricted to a set of values (checked with the types, before any image).
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    # Copies of ``meta``'s fields, for the many readers of ``cls.name``; never declared beside a ``meta``.
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    supports_3d: ClassVar[str] = "none"
    #: Set by the runner for volumes: ``slice_progress(done, total)`` after each z slice of slice-wise methods.
    slice_progress: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "meta" in own:
            clash = [key for key in _META_COPIES if key in own]
            if clash:
                raise TypeError(
                    f"{cls.__qualname__} declares {', '.join(clash)} beside meta; declare them in meta."
                )
        elif "name" in own:  # a class declaring only a name (tests, quick experiments): minimal metadata
            doc = (cls.__doc__ or "").strip().splitlines()
            cls.meta = MethodMeta(
                name=cls.name,
                description=own.get("description") or (doc[0] if doc else cls.name),
                extra=cls.extra,
                requires=tuple(cls.requires),
                supports_3d=cls.supports_3d,
            )
        else:
            return  # a shared base class (``_MicroSam``): its subclasses declare the metadata
        for key in _META_COPIES:
            setattr(cls, key, getattr(cls.meta, key))

    def __init__(self, **params: Any) -> None:
        if not hasattr(type(self), "meta"):
            raise TypeError(f"{type(self).__qualname__} declares no `meta = MethodMeta(...)` (nor a `name`).")
        params = self.check_params(params)
        self.params: dict[str, Any] = {**self.default_params, **params}
        self.device = "cpu"
        self.domain: str | None = None
        self._prepared = False
        self._loaded_key: tuple[str, object] | None = None

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` checked against this method's defaults and choices (:func:`check_params`), normalised."""
        return check_params(cls.name, cls.default_params, dict(params), cls.param_choices)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def prepare(self, device: str = "cpu", domain: str | None = None) -> None:
        """Load the model once for a run on ``device`` for data of ``domain``.

        Raises
        ------
        MethodUnavailableError
            If a required library is missing; the message names the extra to install.
        """
        missing = missing_modules(self.requires)
        if missing:
            raise MethodUnavailableError(
                f"Method '{self.name}' needs {missing_text(missing)}: {install_hint(type(self))}."
            )
        if domain is not None and domain not in DOMAINS:
            raise InvalidInputError(f"Unknown domain '{domain}'; expected one of {', '.join(DOMAINS)}.")
        key = (device, self._model_key(domain))
        self.device, self.domain = device, domain
        if self._prepared and key == self._loaded_key:
            return  # the loaded model serves this domain too: a multi-dataset run loads it once
        self._prepare(device, domain)
        self._prepared, self._loaded_key = True, key

    def _model_key(self, domain: str | None) -> object:
        """What the loaded model depends on besides the device; a change of key loads the model again.

        The model that a ``model`` parameter names, else ``meta.model_for(domain)``: a method with one model
        for every domain loads it once per run. Methods that declare no models reload per domain.
        """
        if not self.meta.models:
            return domain
        return self.params.get("model") or self.meta.model_for(domain)

    def _prepare(self, device: str, domain: str | None) -> None:  # noqa: B027 - optional hook
        """Load weights; override in methods that have a model."""

    def close(self) -> None:  # noqa: B027 - optional hook: methods without a model release nothing
        """Release the model (GPU memory, file handles)."""

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- segmentation --------------------------------------------------------------------------------------
    @final
    def segment(
        self, image: np.ndarray, *, ndim: int | None = None, spacing: tuple[float, float, float] | None = None
    ) -> np.ndarray:
        """Segment one image or volume.

        Parameters
        ----------
        image : ndarray
            ``(H, W)`` grey or ``(H, W, C)`` with C in {2, 3}; or a volume ``(Z, Y, X)`` (``(Z, Y, X, C)``),
            any numeric dtype.
        ndim : {2, 3}, optional
            Whether ``image`` is a 2D image or a volume. By default a 3-axis array whose last axis has 2 or 3
            entries is a 2D multi-channel image, any other 3-axis (or a 4-axis) array a volume.
        spacing : (float, float, float), optional
            Voxel size (z, y, x) of a volume; native 3D methods use its ratio as anisotropy.

        Returns
        -------
        labels : ndarray of uint32, shape (H, W) or (Z, Y, X)
            0 is background, objects are > 0 (not necessarily consecutive).

        Raises
        ------
        ValueError
            A volume given to a 2D-only method without ``stitch`` (see :meth:`volume_mode`).
        """
        volume = _is_volume(np.asarray(image), ndim)
        if volume:
            try:
                self.volume_mode(self.params)  # a 2D-only method fails here, before loading any model
            except ValueError as err:
                shape = np.shape(image)
                raise ValueError(
                    f"Input of shape {shape} is a volume, not an (H, W) or (H, W, C) image: "
                    f"{str(err)[0].lower()}{str(err)[1:]}"
                ) from None
        if not self._prepared:
            self.prepare(self.device, self.domain)
        if volume:
            return self._segment_volume_checked(np.asarray(image), spacing)
        image = check_image(image)
        labels = self._segment(image)
        return check_labels(labels, image.shape[:2], self.name)

    @classmethod
    def volume_mode(cls, params: dict[str, Any] | None = None) -> str:
        """How the method segments volumes with these parameters: ``3d``, ``stitch`` (its library's slice
        mode) or ``2d+stitch`` (apgbench's generic path).

        Raises
        ------
        ValueError
            If the method is 2D-only and ``stitch`` is not set, or ``stitch`` names an unknown rule.
        """
        from .stitch import STITCH_RULES

        rule = (params or {}).get("stitch")
        if rule is not None:
            if rule not in STITCH_RULES:
                raise InvalidInputError(
                    f"Unknown stitch rule '{rule}' for '{cls.name}'; known: {', '.join(STITCH_RULES)}."
                )
            return "2d+stitch"
        if cls.supports_3d == "none":
            raise InvalidInputError(
                f"Method '{cls.name}' segments 2D images only; run it on volumes slice by slice with "
                f"--param stitch={STITCH_RULES[0]} (2D+stitch)."
            )
        return {"native": "3d", "stitch": "stitch"}[cls.supports_3d]

    def _segment_volume_checked(self, volume: np.ndarray, spacing) -> np.ndarray:
        volume = check_volume(volume)
        mode = self.volume_mode(self.params)
        if mode == "2d+stitch":
            from .stitch import segment_slices, stitch_slices

            planes = segment_slices(lambda plane: self.segment(plane, ndim=2), volume, self.slice_progress)
            labels = stitch_slices(planes, self.params["stitch"])
        else:
            labels = self._segment_volume(
                volume, None if spacing is None else tuple(float(s) for s in spacing)
            )
        return check_labels(labels, volume.shape[:3], self.name)

    def _segment_volume(self, volume: np.ndarray, spacing: tuple[float, float, float] | None) -> np.ndarray:
        """Return a (Z, Y, X) label volume; methods with ``supports_3d`` other than ``none`` override this."""
        raise TypeError(f"Method '{self.name}' declares 3D support but has no _segment_volume.")

    @abstractmethod
    def _segment(self, image: np.ndarray) -> np.ndarray:
        """Return a label image for one validated image."""

    def info(self) -> dict[str, Any]:
        """Provenance for ``run.json``: library versions, model name, weights hash, precision."""
        return {}


_META_COPIES = ("name", "description", "extra", "requires", "supports_3d")


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an input image's axes and dtype; return it as an ndarray."""
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (2, 3)):
        if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
            raise TypeError(f"Image dtype {image.dtype} is not numeric.")
        return image
    raise ValueError(f"Image must be (H, W) or (H, W, C) with C in 2 or 3, got shape {image.shape}.")


def _is_volume(image: np.ndarray, ndim: int | None) -> bool:
    if ndim is not None:
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}.")
        return ndim == 3
    return image.ndim >= 4 or (image.ndim == 3 and image.shape[-1] not in (2, 3))


def check_volume(volume: np.ndarray) -> np.ndarray:
    """Validate a volume: ``(Z, Y, X)`` or ``(Z, Y, X, C)`` with C in {2, 3}, numeric."""
    volume = np.asarray(volume)
    if volume.ndim == 3 or (volume.ndim == 4 and volume.shape[-1] in (2, 3)):
        if not (np.issubdtype(volume.dtype, np.number) or volume.dtype == bool):
            raise TypeError(f"Volume dtype {volume.dtype} is not numeric.")
        return volume
    raise ValueError(f"Volume must be (Z, Y, X) or (Z, Y, X, C) with C in 2 or 3, got shape {volume.shape}.")


def check_labels(labels: np.ndarray, shape: tuple[int, ...], method: str = "method") -> np.ndarray:
    """Check a method's output and return it as uint32 of the given spatial shape."""
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(f"'{method}' returned labels of shape {labels.shape}, expected {tuple(shape)}.")
    if labels.dtype == bool:  # one mask, not instances: refused as `evaluate` and the metrics refuse it
        raise TypeError(
            f"'{method}' returned a boolean mask; return an integer label image "
            "(one id per object, e.g. skimage.measure.label(mask))."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"'{method}' returned labels of dtype {labels.dtype}; an integer dtype is required.")
    if labels.size and labels.min() < 0:
        raise ValueError(f"'{method}' returned negative labels.")
    if labels.size and labels.max() > np.iinfo(np.uint32).max:
        raise ValueError(f"'{method}' returned label ids above the uint32 range.")
    return labels.astype(np.uint32, copy=False)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Map the ids of ``labels`` to 1..N in order of first appearance in sorted id order (0 stays 0)."""
    ids, inverse = np.unique(labels, return_inverse=True)
    if ids.size and ids[0] == 0:
        return inverse.reshape(labels.shape).astype(np.uint32)
    return (inverse + 1).reshape(labels.shape).astype(np.uint32)


def paint_masks_last_wins(
    masks: list[np.ndarray] | np.ndarray, shape: tuple[int, int], order: str = "as-given"
) -> np.ndarray:
    """Paint binary masks into a uint32 label image; later masks overwrite earlier ones (the last wins).

    Parameters
    ----------
    masks : sequence of bool arrays of ``shape``
        The instance masks, in painting order.
    shape : tuple of int
        Output shape.
    order : {"as-given", "largest-first"}
        ``largest-first`` paints big masks first so that small masks win overlaps (SAM's AMG convention).

    Returns
    -------
    labels : ndarray of uint32
        Ids 1..N in painting order; a mask fully hidden by later ones leaves no id.
    """
    labels = np.zeros(shape, dtype=np.uint32)
    masks = list(masks)
    if order == "largest-first":
        masks = sorted(masks, key=lambda m: -int(np.count_nonzero(m)))
    elif order != "as-given":
        raise ValueError(f"Unknown painting order '{order}'.")
    for index, mask in enumerate(masks, start=1):
        labels[np.asarray(mask, dtype=bool)] = index
    return relabel_sequential(labels)
