"""The Recipe: a frozen, validated, YAML round-trippable description of a run."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import InitVar, dataclass
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from automed._params import check_choice, check_range, from_mapping, shown, to_mapping
from automed.errors import RecipeError

__all__ = ["Recipe", "RungSpec", "parse_duration", "parse_size"]

CV_MODES = ("fold0", "full", "by-site")
COLOURS = ("rgb", "grey")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds from ``"90"``, ``"90s"``, ``"10min"`` or ``"2h"``; ``None`` stays ``None``.

    Examples
    --------
    >>> parse_duration("10min")
    600.0
    """
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise RecipeError(
            f"Cannot read the duration {text!r}; write it like '90s', '10min' or '2h'."
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_UNIT_BYTES = {None: 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str | int | None) -> int | None:
    """Bytes from ``"8GB"``, ``"512MiB"`` or a number; ``None`` stays ``None``.

    Examples
    --------
    >>> parse_size("8GB")
    8000000000
    """
    if text is None or isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise RecipeError(f"Cannot read the memory size {text!r}; write it like '8GB' or '512MiB'.")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _UNIT_BYTES[unit])


@dataclass(frozen=True)
class RungSpec:
    """One rung of the ladder and its parameters.

    Parameters
    ----------
    name : str
        Registered rung name, e.g. ``"classical"``.
    params : dataclass instance or mapping, optional
        The rung's parameters. The :class:`Recipe` validates a mapping against the
        schema of the rung registered for its task, filling in the defaults.
    """

    name: str
    params: Any = None


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a run, fully resolved and validated on construction.

    Parameters
    ----------
    task : str
        A registered task (:func:`automed.tasks.task_names`): ``"segmentation"`` or ``"classification"``.
    data_format : str
        Dataset layout; ``"auto"`` detects it. Segmentation: ``"msd"``, ``"nnunet"``,
        ``"folders"``, ``"csv"``; classification: ``"medmnist"``, ``"class_folders"``, ``"csv"``.
    metric : str or None
        What rungs are judged and tuned by: ``"dice"`` for segmentation; ``"auc"``
        (default), ``"balanced_accuracy"``, ``"accuracy"`` or, for ordinal classes,
        ``"qwk"`` (quadratic-weighted kappa) for classification.
    n_folds : int
        Cross-validation folds (>= 2).
    test_fraction : float
        Classification without an official test split: share of the cases held out as
        a stratified (and grouped) test set that tuning never sees.
    random_state : int
        Seed for splits, sampling, models and search.
    budget_s : float or None
        Wall-clock budget of the whole fit in seconds (``None``: unbounded).
    include_background : bool
        Whether the headline metric averages over the background class too (useful when
        "background" is a real structure, e.g. membranes in electron microscopy).
    colour : {"rgb", "grey"}
        Colour photographs (dermoscopy, endoscopy, H&E; PNG, JPEG, GIF, MedMNIST ``(N, H, W, 3)``):
        read as their R, G and B channels, or reduced to luminance (to measure what colour is worth).
    target_spacing : "auto", tuple of float or None
        Segmentation: resample every case onto this spacing (array axis order, e.g. ``[2.5, 2.5]``
        for 2D, ``[3, 1, 1]`` for a volume) to fit and score on, and predictions back onto each
        input's own grid. ``"auto"`` (default): the cases' median spacing, with nnU-Net's rule
        for anisotropic axes; None: every case on its own grid, as stored. A coarser grid is
        what makes large photographs or volumes affordable on a CPU.
    n_jobs : int
        Worker processes/threads for feature extraction and models; -1: all cores, -2: all but one
        (joblib's convention). A fit uses no more workers than the cores and free memory it has
        (:func:`automed.environment.resolve_n_jobs`), and records the number in ``run.json``.
    folds_file : str or None
        Segmentation: a JSON file of fixed folds in nnU-Net's ``splits_final.json`` layout
        (``[{"train": [...], "val": [...]}, ...]``), used instead of automed's own folds (so a
        run is judged on exactly the cases another tool was); ``n_folds`` then becomes its number
        of folds.
    cv : {"fold0", "full", "by-site"}
        Cases every rung is judged on: fold 0's validation cases (deep rungs train once),
        or every fold's (deep rungs train once per fold). ``"by-site"`` (cases with a site): as
        ``"fold0"``, and every finished rung is then refitted once per site on the other sites'
        cases and scored on that site's (leave-one-site-out; classification: the site's test
        cases): its metric on an unseen site beside its in-site figure (``site_shift.json``, the
        report's "Another site").
    max_vram_bytes : int or None
        Training-memory limit; deep rungs shrink their configuration to fit it or are
        skipped. ``None``: 90% of the GPU's memory on CUDA, no limit on CPU.
    min_gain : float
        Climbing stops when a rung's paired gain over the best rung so far is, with 95%
        confidence, below this (the upper CI bound is under it).
    full_ladder : bool
        Climb every rung regardless of ``min_gain``.
    label_fractions : tuple of float
        Also refit every finished rung on these fractions of the labelled cases (classification:
        stratified development cases, the test cases unchanged; segmentation: nested subsets of fold 0's
        training cases, its validation cases unchanged) and report the learning curve. The climb then gets
        ``budget / (1 + sum of the fractions below 1)``; the refits share the rest in proportion to the
        rung's own fit time times the fraction.
    ordinal : bool
        Classification: the classes are ordered grades (lesion grades, retinopathy stages),
        lowest first as in ``class_order``. The rungs then also search ordinal models against
        plain multi-class, and the report adds quadratic-weighted kappa.
    class_order : tuple of str
        Classification: every class name, in order (for ordinal grades, lowest first); empty:
        sorted names (MedMNIST's class numbers in numeric order).
    raters : tuple of str
        Segmentation with several annotators: glob patterns of the rater folders, relative to the
        dataset root (``["experts_*/person*"]``); empty: the ``<labels>_<rater>/`` folders beside the
        labels folder, if any (:mod:`automed.data.raters`).
    consensus : str
        Segmentation with several annotators: the label the rungs train on, ``"staple"`` (SimpleITK's
        STAPLE), ``"majority"`` or ``"rater:NAME"`` (one rater's masks).
    atlas : str or None
        Registration: ``IMAGE[,LABEL]``, an atlas registered onto every held-out subject (atlas-to-subject
        pairs replace the dataset's own).
    rungs : tuple of RungSpec or None
        The ladder, lowest rung first; None: the task's default ladder.
    budget : str or float, optional
        The budget written for people (``"10min"``, ``"2h"``, seconds), as the YAML key ``budget``
        and :func:`automed.fit` take it; sets ``budget_s``.
    max_vram : str or int, optional
        The training-memory limit written for people (``"8GB"``); sets ``max_vram_bytes``.

    Examples
    --------
    >>> r = Recipe(task="segmentation", n_folds=3)
    >>> Recipe.from_dict(r.to_dict()) == r
    True
    """

    task: str = "segmentation"
    data_format: str = "auto"
    metric: str | None = None
    n_folds: int = 5
    test_fraction: float = 0.2
    random_state: int = 0
    budget_s: float | None = None
    include_background: bool = False
    colour: str = "rgb"
    target_spacing: str | tuple[float, ...] | None = "auto"
    n_jobs: int = -1
    folds_file: str | None = None
    cv: str = "fold0"
    max_vram_bytes: int | None = None
    min_gain: float = 0.005
    full_ladder: bool = False
    label_fractions: tuple[float, ...] = ()
    ordinal: bool = False
    class_order: tuple[str, ...] = ()
    raters: tuple[str, ...] = ()
    consensus: str = "staple"
    atlas: str | None = None
    rungs: tuple[RungSpec, ...] | None = None
    budget: InitVar[str | float | None] = None
    max_vram: InitVar[str | int | None] = None

    def __post_init__(self, budget: str | float | None, max_vram: str | int | None) -> None:
        if budget is not None:  # the human-friendly spelling of budget_s, as in a YAML recipe
            if self.budget_s is not None:
                raise RecipeError("Recipe: give either 'budget' or 'budget_s', not both.")
            object.__setattr__(self, "budget_s", parse_duration(budget))
        if max_vram is not None:
            if self.max_vram_bytes is not None:
                raise RecipeError("Recipe: give either 'max_vram' or 'max_vram_bytes', not both.")
            object.__setattr__(self, "max_vram_bytes", parse_size(max_vram))
        from automed.tasks import get_task, task_names

        check_choice("Recipe", "task", self.task, tuple(task_names()))
        task = get_task(self.task)
        check_choice("Recipe", "data_format", self.data_format, task.data_formats)
        object.__setattr__(self, "metric", self.metric or task.metrics[0])
        check_choice("Recipe", "metric", self.metric, task.metrics)
        check_range("Recipe", "test_fraction", self.test_fraction, 0.05, 0.5)
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int):
            raise RecipeError(f"The 'n_folds' parameter of Recipe must be an int >= 2. Got {shown(self.n_folds)} instead.")
        check_range("Recipe", "n_folds", self.n_folds, 2)
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, int) \
                or not 0 <= self.random_state < 2**32:
            raise RecipeError(f"The 'random_state' parameter of Recipe must be an int in [0, 2**32 - 1]. "
                              f"Got {shown(self.random_state)} instead.")
        if self.budget_s is not None:
            check_range("Recipe", "budget_s", self.budget_s, 1)
        if not isinstance(self.include_background, bool):
            raise RecipeError(f"The 'include_background' parameter of Recipe must be true or false. Got {shown(self.include_background)} instead.")
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs == 0:
            raise RecipeError(f"The 'n_jobs' parameter of Recipe must be a number of workers >= 1, or -1 for all cores "
                              f"(-2 all but one, as in joblib). Got {shown(self.n_jobs)} instead.")
        check_choice("Recipe", "cv", self.cv, CV_MODES)
        if self.cv == "by-site" and not self._reads("site_shift"):
            raise RecipeError(f"The 'cv' parameter of Recipe can be 'by-site' for {_tasks_reading('site_shift')} only.")
        if self.folds_file is not None and (not isinstance(self.folds_file, str) or not self._reads("folds_file")):
            raise RecipeError(f"The 'folds_file' parameter of Recipe must be the path of a JSON file of folds, and applies "
                              f"to {_tasks_reading('folds_file')} only. Got {shown(self.folds_file)} for {self.task}.")
        check_choice("Recipe", "colour", self.colour, COLOURS)
        self._check_spacing()
        if self.max_vram_bytes is not None:
            check_range("Recipe", "max_vram_bytes", self.max_vram_bytes, 2**20)
        check_range("Recipe", "min_gain", self.min_gain, -1.0, 1.0)
        if not isinstance(self.full_ladder, bool):
            raise RecipeError(f"The 'full_ladder' parameter of Recipe must be true or false. Got {shown(self.full_ladder)} instead.")
        for fraction in self.label_fractions:
            check_range("Recipe", "label_fractions", fraction, 0.01, 1.0)
        if self.label_fractions and not self._reads("label_fractions"):
            raise RecipeError(f"The 'label_fractions' parameter of Recipe applies to {_tasks_reading('label_fractions')} "
                              "only.")
        object.__setattr__(self, "label_fractions", tuple(sorted(set(float(f) for f in self.label_fractions))))
        self._check_classes()
        self._check_raters()
        if self.atlas is not None and (not isinstance(self.atlas, str) or not self.atlas or not self._reads("atlas")):
            raise RecipeError(f"The 'atlas' parameter of Recipe must be 'IMAGE[,LABEL]' and applies to "
                              f"{_tasks_reading('atlas')} only. Got {shown(self.atlas)} for {self.task}.")
        if self.rungs is not None and not isinstance(self.rungs, (list, tuple)):
            raise RecipeError(f"The 'rungs' parameter of Recipe must be a list, e.g. ['classical']. "
                              f"Got {shown(self.rungs)} instead.")
        if self.rungs is not None and not self.rungs:
            raise RecipeError("Recipe rungs: is empty; name at least one rung (e.g. classical) or leave it out for "
                              "the default ladder.")
        rungs = task.default_rungs if self.rungs is None else self.rungs
        specs = tuple(_resolve(_as_spec(r), self.task) for r in rungs)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise RecipeError(f"Recipe rungs must be distinct; got {names}.")
        object.__setattr__(self, "rungs", specs)

    def _check_raters(self) -> None:
        from automed.data.consensus import check_consensus

        if isinstance(self.raters, str) or not isinstance(self.raters, (list, tuple)) or not all(
                isinstance(r, str) and r for r in self.raters):
            raise RecipeError(f"The 'raters' parameter of Recipe must be a list of folder patterns, e.g. "
                              f"['experts_*/person*']. Got {shown(self.raters)} instead.")
        object.__setattr__(self, "raters", tuple(self.raters))
        check_consensus(self.consensus)
        for name, default in (("raters", ()), ("consensus", "staple")):
            if getattr(self, name) != default and not self._reads(name):
                raise RecipeError(f"The '{name}' parameter of Recipe applies to {_tasks_reading(name)} only.")

    def _check_spacing(self) -> None:
        if self.target_spacing is None or self.target_spacing == "auto":
            return
        spacing = self.target_spacing
        if isinstance(spacing, (str, bytes)) or not isinstance(spacing, (list, tuple)) or not spacing or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in spacing):
            raise RecipeError(f"The 'target_spacing' parameter of Recipe must be a list of positive numbers, one per "
                              f"image axis (e.g. [2.5, 2.5]), 'auto' or null. Got {shown(spacing)} instead.")
        if not self._reads("target_spacing"):
            raise RecipeError(f"The 'target_spacing' parameter of Recipe applies to {_tasks_reading('target_spacing')} "
                              "only.")
        object.__setattr__(self, "target_spacing", tuple(float(s) for s in spacing))

    def _check_classes(self) -> None:
        if not isinstance(self.ordinal, bool):
            raise RecipeError(f"The 'ordinal' parameter of Recipe must be true or false. Got {shown(self.ordinal)} instead.")
        if isinstance(self.class_order, str) or not all(isinstance(c, str) and c for c in self.class_order):
            raise RecipeError(f"The 'class_order' parameter of Recipe must be a list of class names, e.g. "
                              f"['common_nevus', 'atypical_nevus', 'melanoma']. Got {shown(self.class_order)} instead.")
        object.__setattr__(self, "class_order", tuple(self.class_order))
        if len(set(self.class_order)) != len(self.class_order):
            raise RecipeError(f"Recipe class_order names a class twice: {list(self.class_order)}.")
        if (self.ordinal or self.class_order) and not (self._reads("ordinal") and self._reads("class_order")):
            raise RecipeError(f"The 'ordinal' and 'class_order' parameters of Recipe apply to "
                              f"{_tasks_reading('ordinal')} only.")
        if self.metric == "qwk" and not self.ordinal:
            raise RecipeError("Recipe metric 'qwk' (quadratic-weighted kappa) weighs errors by how many grades apart "
                              "they are, so it needs ordered classes: set 'ordinal: true' (and 'class_order').")

    def _reads(self, option: str) -> bool:
        """Whether this recipe's task reads the task-specific field ``option``."""
        from automed.tasks import get_task

        return option in get_task(self.task).recipe_options

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_rungs(self, names: Sequence[str]) -> Recipe:
        """A copy climbing the rungs ``names`` (lowest first), keeping the parameters this recipe gives them.

        Raises
        ------
        RecipeError
            If ``names`` is empty or names a rung the task does not have.
        """
        if not names:
            raise RecipeError("names no rung; give rung names, e.g. classical,unet2d.")
        configured = {spec.name: spec for spec in self.rungs}
        return self.replace(rungs=tuple(configured.get(name, name) for name in names))

    def with_rung_params(self, name: str, **values: Any) -> Recipe:
        """A copy with ``values`` set on the parameters of the rung ``name``.

        Raises
        ------
        RecipeError
            If the ladder does not climb ``name``, or a value is refused by the rung's parameters.
        """
        if name not in {spec.name for spec in self.rungs}:
            raise RecipeError(f"applies to the {name} rung, which this ladder "
                              f"({', '.join(s.name for s in self.rungs)}) does not climb.")
        return self.replace(rungs=tuple(RungSpec(s.name, dataclasses.replace(s.params, **values))
                                        if s.name == name else s for s in self.rungs))

    def with_pretrained_weights(self, files: Mapping[str | None, str]) -> Recipe:
        """A copy whose transfer rungs start from the state dicts ``files``: rung name -> file, or
        ``None`` -> the file of every transfer rung not named.

        Raises
        ------
        RecipeError
            If the ladder climbs no transfer rung, or ``files`` names a rung that is not one of its transfer rungs.
        """
        takes_weights = [s.name for s in self.rungs if hasattr(s.params, "weights")]
        if not takes_weights:
            raise RecipeError(f"applies to the transfer rungs (vgg16, inception_v3), which this ladder "
                              f"({', '.join(s.name for s in self.rungs)}) does not climb.")
        unknown = set(files) - {None, *takes_weights}
        if unknown:
            raise RecipeError(f"names {sorted(unknown)}, not transfer rungs of this ladder ({takes_weights}).")
        recipe = self
        for name in takes_weights:
            if (path := files.get(name, files.get(None))) is not None:
                recipe = recipe.with_rung_params(name, weights=path)
        return recipe

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with every default written out."""
        return to_mapping(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """Build from a plain mapping; unknown keys raise :class:`RecipeError`."""
        if not isinstance(values, dict):
            raise RecipeError(f"A recipe must be a mapping, got {type(values).__name__}.")
        values = dict(values)
        if isinstance(values.get("rungs"), (list, tuple)):
            values["rungs"] = tuple(_as_spec(r) for r in values["rungs"])
        return from_mapping(cls, values, "Recipe")

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of the fully resolved recipe; written to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            from automed.data.atomic import write_text

            write_text(Path(path), text)
        return text

    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> Recipe:
        """Read a recipe from a YAML file path (or YAML text containing a newline)."""
        import yaml

        where = "recipe"
        text = str(path_or_text)
        if isinstance(path_or_text, Path) or "\n" not in text:
            path = Path(path_or_text)
            if not path.is_file():
                raise RecipeError(f"{path}: recipe file not found.")
            where, text = str(path), path.read_text()
        try:
            values = yaml.load(text, Loader=_unique_keys_loader())  # a SafeLoader subclass: safe_load semantics
        except yaml.YAMLError as exc:
            raise RecipeError(f"{where}: not valid YAML ({exc}).") from exc
        try:
            return cls.from_dict(values)
        except RecipeError as exc:
            raise RecipeError(f"{where}: {exc}") from exc


def _unique_keys_loader() -> type:
    """PyYAML's ``SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _tasks_reading(option: str) -> str:
    """The names of the tasks that read the task-specific recipe field ``option``, for a message."""
    from automed.tasks import get_task, task_names

    return " and ".join(name for name in task_names() if option in get_task(name).recipe_options)


def _as_spec(value: Any) -> RungSpec:
    if isinstance(value, RungSpec):
        return value
    if isinstance(value, str):
        return RungSpec(value)
    if isinstance(value, dict):
        return from_mapping(RungSpec, value, "rung")
    raise RecipeError(f"A rung must be a name or a mapping with 'name' and 'params'; got {value!r}.")


def _resolve(spec: RungSpec, task: str) -> RungSpec:
    """Validate a rung's parameters against the schema of the rung registered for ``task``."""
    from automed.rungs import rung_class  # the rung owns its parameter schema

    cls = rung_class(spec.name, task)
    if isinstance(spec.params, cls.Params):
        return spec
    params = to_mapping(spec.params) if dataclasses.is_dataclass(spec.params) else spec.params
    return RungSpec(spec.name, from_mapping(cls.Params, params, f"rung '{spec.name}' params"))
