"""Dataset specs: YAML files parsed into frozen dataclasses, validated with file, line and key.

The dataclasses below are the single definition of the spec: the validator walks them, and the
published JSON Schema (``labelquality.schema.json``) is generated from them.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import operator
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_labelquality.errors import SpecError
from pytest_labelquality.model_registry import (
    KERAS_SETTINGS,
    listed,
    model_entry,
    model_names,
    names_taking,
)
from pytest_labelquality.source_specs import (
    BUILTIN_SOURCES,
    SEED_RANGE,
    CsvSource,
    NpzSource,
    QuickDrawSource,
    SourceSpec,
    field_doc,
)

SPEC_SUFFIXES = (".labelquality.yaml", ".labelquality.yml")
SCHEMA_FILE = Path(__file__).with_name("labelquality.schema.json")


def is_spec_file(path: Path) -> bool:
    """Whether a file name follows the namespaced spec pattern."""
    return path.name.endswith(SPEC_SUFFIXES)


class RankedBy(enum.StrEnum):
    """The label-quality score that ranks suspects: ``given_vs_rival`` (the given label's share
    of the probability it and its strongest rival hold), or one of cleanlab's."""

    GIVEN_VS_RIVAL = "given_vs_rival"
    NORMALIZED_MARGIN = "normalized_margin"
    SELF_CONFIDENCE = "self_confidence"
    CONFIDENCE_WEIGHTED_ENTROPY = "confidence_weighted_entropy"


class FilterBy(enum.StrEnum):
    """How suspects are chosen: ``estimate`` flags the lowest-scoring items, as many as the
    estimated count; the others are cleanlab's ``find_label_issues`` filters."""

    ESTIMATE = "estimate"
    PRUNE_BY_NOISE_RATE = "prune_by_noise_rate"
    PRUNE_BY_CLASS = "prune_by_class"
    BOTH = "both"
    CONFIDENT_LEARNING = "confident_learning"
    PREDICTED_NEQ_GIVEN = "predicted_neq_given"


class CountMethod(enum.StrEnum):
    """cleanlab's ``num_label_issues`` estimator; ``auto`` calibrates below 4 classes."""

    AUTO = "auto"
    OFF_DIAGONAL = "off_diagonal"
    OFF_DIAGONAL_CALIBRATED = "off_diagonal_calibrated"


class Calibration(enum.StrEnum):
    """How the out-of-fold probabilities are calibrated before they are counted: ``auto``
    temperature-scales those of models trained with label smoothing."""

    AUTO = "auto"
    TEMPERATURE = "temperature"
    NONE = "none"


def source_types() -> tuple[type[Any], ...]:
    """Every source's spec type: the built-ins and :mod:`pytest_labelquality.formats`'."""
    from pytest_labelquality.formats import registered

    return BUILTIN_SOURCES + tuple(f.spec_type for f in registered().values())


FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class ModelSpec:
    """The classifier trained on each fold: a ``name`` of the model registry or a ``factory``.

    Unnamed, the default depends on the data and the extras installed (see ``model.name``)."""

    name: str | None = field(
        default=None,
        metadata=field_doc("A model of the registry (model_registry.py).", choices=model_names),
    )
    factory: str | None = field(
        default=None,
        metadata=field_doc(
            "``module:callable`` returning a Keras model or a scikit-learn estimator.",
            pattern=FACTORY_PATTERN.pattern,
        ),
    )
    epochs: int | None = field(
        default=None, metadata=field_doc("Keras: training epochs.", minimum=1)
    )
    batch_size: int | None = field(
        default=None, metadata=field_doc("Keras: batch size.", minimum=1)
    )
    learning_rate: float | None = field(
        default=None, metadata=field_doc("Keras: Adam's learning rate.", exclusiveMinimum=0)
    )
    params: dict[str, Any] = field(
        default_factory=dict,
        metadata=field_doc("Keyword arguments for the estimator or the factory."),
    )
    encoder: str | None = field(
        default=None,
        metadata=field_doc(
            "encoder_linear, tfidf_encoder and auto: the frozen encoder whose embeddings the"
            " head trains on: a built-in (efficientnet_lite0, efficientnet_lite2, minilm_l6),"
            " sentence-transformers:NAME, timm:NAME or timm:ARCH@FILE,"
            " open_clip:ARCH/PRETRAINED, or onnx:PATH (a local ONNX file; texts also need"
            " model.tokenizer); local weights are relative to the spec. Default:"
            " efficientnet_lite0 for images, minilm_l6 for texts.",
            minLength=1,
        ),
    )
    tokenizer: str | None = field(
        default=None,
        metadata=field_doc(
            "With encoder onnx:PATH on texts: the model's tokenizer.json, relative to the spec.",
            minLength=1,
        ),
    )
    mirror: bool | None = field(
        default=None,
        metadata=field_doc(
            "Images keep their label when mirrored left to right (drawings or photos of objects;"
            " not text or digits): train on mirror images too and average each prediction over"
            " both. Default: true for Quick, Draw! sources, false otherwise."
        ),
    )
    members: tuple[str, ...] | None = field(
        default=None,
        metadata=field_doc(
            "ensemble: the models whose out-of-fold probabilities it averages, each"
            " cross-validated and cached as a run of its own; each member takes the settings"
            " above that it accepts. Default: hog_boosting and small_cnn.",
            choices=model_names,
            minItems=2,
        ),
    )


@dataclass(frozen=True)
class CvSpec:
    """Stratified K-fold cross-validation."""

    folds: int = field(default=5, metadata=field_doc("Number of folds.", minimum=2))
    seed: int = field(
        default=0, metadata=field_doc("Seed of the fold split and of training.", **SEED_RANGE)
    )
    jobs: int = field(
        default=1,
        metadata=field_doc("Folds trained at once (scikit-learn models; joblib).", minimum=1),
    )


@dataclass(frozen=True)
class DetectionSpec:
    """How cleanlab finds suspects and counts them."""

    ranked_by: RankedBy = field(
        default=RankedBy.GIVEN_VS_RIVAL, metadata=field_doc("Label-quality score.")
    )
    filter_by: FilterBy = field(default=FilterBy.ESTIMATE, metadata=field_doc("Suspect filter."))
    count: CountMethod = field(
        default=CountMethod.AUTO, metadata=field_doc("Noise-count estimator.")
    )
    calibrate: Calibration = field(
        default=Calibration.AUTO,
        metadata=field_doc("Calibration of the probabilities before counting."),
    )


@dataclass(frozen=True)
class GateSpec:
    """When the test item fails."""

    max_noise_rate: float = field(
        metadata=field_doc("Fail above this estimated share of wrong labels.", minimum=0, maximum=1)
    )
    max_class_noise_rate: dict[str, float] = field(
        default_factory=dict,
        metadata=field_doc("Per-class maxima, by class name.", minimum=0, maximum=1),
    )
    max_increase: float | None = field(
        default=None,
        metadata=field_doc(
            "Fail when the estimate rises more than this over the baseline's.", minimum=0
        ),
    )
    max_new_suspects: int | None = field(
        default=None,
        metadata=field_doc(
            "Fail when more items that this change added or relabelled are suspect.", minimum=0
        ),
    )
    max_new_suspect_share: float | None = field(
        default=None,
        metadata=field_doc(
            "Fail when a larger share of the items this change added or relabelled is suspect.",
            minimum=0,
            maximum=1,
        ),
    )
    max_conflicting_duplicates: int | None = field(
        default=None,
        metadata=field_doc(
            "Fail when more groups of identical items carry different labels.", minimum=0
        ),
    )
    max_near_duplicate_share: float | None = field(
        default=None,
        metadata=field_doc(
            "Fail when a larger share of the items repeats another exactly or nearly.",
            minimum=0,
            maximum=1,
        ),
    )
    max_outlier_share: float | None = field(
        default=None,
        metadata=field_doc(
            "Fail when a larger share of the items belongs to no class (outliers).",
            minimum=0,
            maximum=1,
        ),
    )
    max_leaks: int | None = field(
        default=None,
        metadata=field_doc(
            "Fail when more pairs of items of different splits are exact or near duplicates.",
            minimum=0,
        ),
    )
    max_new_data_issues: int | None = field(
        default=None,
        metadata=field_doc(
            "Fail when this change brings in more duplicates, leaks and outliers (in all).",
            minimum=0,
        ),
    )


@dataclass(frozen=True)
class ChecksSpec:
    """Defects beside wrong labels: duplicates, leaks between splits, outliers."""

    enabled: bool = field(
        default=True,
        metadata=field_doc("Look for duplicates, leaks and outliers beside wrong labels."),
    )
    near_similarity: float | None = field(
        default=None,
        metadata=field_doc(
            "Cosine similarity from which two items are near duplicates (default: 0.8 on image"
            " embeddings, whose thumbnails must also match; 0.95 on text embeddings; 0.98 on raw"
            " features).",
            minimum=0,
            maximum=1,
        ),
    )


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset to check: becomes one test item."""

    name: str = field(metadata=field_doc("Name of the test item.", pattern=r"^[A-Za-z0-9_.\-]+$"))
    source: SourceSpec = field(metadata=field_doc("Where the items and labels come from."))
    gate: GateSpec = field(metadata=field_doc("Thresholds."))
    model: ModelSpec = field(default_factory=ModelSpec, metadata=field_doc("The classifier."))
    cv: CvSpec = field(default_factory=CvSpec, metadata=field_doc("Cross-validation."))
    detection: DetectionSpec = field(
        default_factory=DetectionSpec, metadata=field_doc("Detection.")
    )
    checks: ChecksSpec = field(
        default_factory=ChecksSpec, metadata=field_doc("Duplicates, leaks and outliers.")
    )
    spec_path: Path = field(default=Path(), metadata={"yaml": False})
    line: int = field(default=0, metadata={"yaml": False})

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths in this dataset resolve against."""
        return self.spec_path.parent

    def resolve(self, relative: str) -> Path:
        """A path of the spec, resolved against the spec's folder (a symlink loop, or a name
        too long to resolve, stays as written: opening it then names the problem)."""
        path = self.base_dir / relative
        try:
            return path.resolve()
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
            return Path(os.path.abspath(path))

    @property
    def location(self) -> str:
        """``file:line`` of the dataset's entry."""
        return f"{self.spec_path}:{self.line}"


@dataclass(frozen=True)
class SpecFile:
    """A whole spec file."""

    datasets: tuple[DatasetSpec, ...] = field(
        metadata=field_doc("The datasets of this file; each one becomes a test item.", minItems=1)
    )


# --- the validating walker -------------------------------------------------------------------


def _yaml_fields(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # each field in the namespace of the class defining it


def _is_optional(tp: Any) -> tuple[bool, Any]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (types.UnionType, typing.Union) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return False, tp


class _Walker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, key: str, problem: str) -> SpecError:
        return SpecError(self.path, node.start_mark.line + 1, key, problem)

    def scalar(self, node: yaml.Node, key: str = "") -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            # an unknown tag, or an implicit type YAML cannot build (a date like 2020-13-45)
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.fail(node, key, f"cannot read this value: {problem}") from None

    def mapping(self, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping, got {self.describe(node)}")
        if node.tag != "tag:yaml.org,2002:map":
            raise self.fail(node, key, f"cannot read this value: unsupported YAML tag {node.tag}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            name = self.scalar(knode, key)
            if not isinstance(name, str):
                raise self.fail(knode, key, f"keys must be strings, got {name!r}")
            if name in out:
                raise self.fail(knode, _join(key, name), "duplicate key")
            out[name] = (knode, vnode)
        return out

    def describe(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return repr(self.scalar(node))

    def convert(self, node: yaml.Node, tp: Any, key: str, meta: dict[str, Any]) -> Any:
        optional, tp = _is_optional(tp)
        if optional and isinstance(node, yaml.ScalarNode) and self.scalar(node) is None:
            return None
        if tp is SourceSpec:
            return self.source(node, key)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(node, typing.cast(type[Any], tp), key)
        origin = typing.get_origin(tp)
        if origin is tuple:
            if meta.get("oneOrMore") and isinstance(node, yaml.ScalarNode):
                node = yaml.SequenceNode("tag:yaml.org,2002:seq", [node], node.start_mark)
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, key, f"expected a list, got {self.describe(node)}")
            if node.tag != "tag:yaml.org,2002:seq":
                raise self.fail(node, key, f"cannot read this value: unsupported tag {node.tag}")
            item_tp = typing.get_args(tp)[0]
            item_meta = {k: meta[k] for k in ("choices",) if k in meta}
            items = tuple(
                self.convert(n, item_tp, f"{key}[{i}]", item_meta) for i, n in enumerate(node.value)
            )
            if len(items) < meta.get("minItems", 0):
                raise self.fail(node, key, f"expected at least {meta['minItems']} entries")
            return items
        if origin is dict:
            value_tp = typing.get_args(tp)[1]
            entries = self.mapping(node, key)
            if value_tp is Any:
                return {k: self.scalar(v, _join(key, k)) for k, (_, v) in entries.items()}
            return {
                k: self.convert(v, value_tp, _join(key, k), meta) for k, (_, v) in entries.items()
            }
        return self.leaf(node, tp, key, meta)

    def leaf(self, node: yaml.Node, tp: Any, key: str, meta: dict[str, Any]) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"expected {_type_name(tp)}, got {self.describe(node)}")
        value = self.scalar(node, key)
        if (isinstance(tp, type) and issubclass(tp, enum.Enum)) or "choices" in meta:
            choices = _choices(tp, meta)
            if value not in choices:
                raise self.fail(
                    node, key, f"{value!r} is not one of: {', '.join(map(str, choices))}"
                )
            return tp(value)
        ok = (
            (tp is bool and isinstance(value, bool))
            or (tp is int and isinstance(value, int) and not isinstance(value, bool))
            or (tp is float and isinstance(value, int | float) and not isinstance(value, bool))
            or (tp is str and isinstance(value, str))
        )
        if not ok:
            hint = f" (quote it: '{node.value}')" if tp is str and value is not None else ""
            raise self.fail(node, key, f"expected {_type_name(tp)}, got {value!r}{hint}")
        if tp is float:
            try:
                value = float(value)
            except OverflowError:
                raise self.fail(node, key, f"{value!r} is too large for a number") from None
        bound = _check_bounds(value, meta)
        if bound:
            raise self.fail(node, key, f"{value!r} is out of range: must be {bound}")
        pattern = meta.get("pattern")
        if pattern and not re.match(pattern, value):
            raise self.fail(node, key, f"{value!r} does not match {pattern}")
        problem = _check_length(value, meta) or (meta["check"](value) if "check" in meta else "")
        if problem:
            hint = f"; {meta['hint']}" if "hint" in meta else ""
            raise self.fail(node, key, f"{value!r} {problem}{hint}")
        return value

    def dataclass(self, node: yaml.Node, cls: type[Any], key: str, skip: str = "") -> Any:
        entries = self.mapping(node, key)
        fields = {f.name: f for f in _yaml_fields(cls)}
        hints = _hints(cls)
        for name, (knode, _) in entries.items():
            if name not in fields and name != skip:
                valid = sorted(fields)
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(
                    knode, _join(key, name), f"unknown key; {hint}valid keys: {', '.join(valid)}"
                )
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name in entries:
                kwargs[name] = self.convert(
                    entries[name][1], hints[name], _join(key, name), dict(f.metadata)
                )
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.fail(node, _join(key, name), "missing required key")
        return cls(**kwargs)

    def source(self, node: yaml.Node, key: str) -> Any:
        entries = self.mapping(node, key)
        formats = {cls.FORMAT: cls for cls in source_types()}
        if "format" not in entries:
            raise self.fail(
                node, _join(key, "format"), f"missing required key; one of: {', '.join(formats)}"
            )
        fnode = entries["format"][1]
        fmt = self.scalar(fnode, _join(key, "format"))
        if not isinstance(fmt, str) or fmt not in formats:
            raise self.fail(
                fnode, _join(key, "format"), f"{fmt!r} is not one of: {', '.join(formats)}"
            )
        return self.dataclass(node, formats[fmt], key, skip="format")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _check_bounds(value: Any, meta: dict[str, Any]) -> str:
    if not isinstance(value, int | float):
        return ""
    rules = [
        ("minimum", operator.ge, ">= {}"),
        ("exclusiveMinimum", operator.gt, "> {}"),
        ("maximum", operator.le, "<= {}"),
        ("exclusiveMaximum", operator.lt, "< {}"),
    ]
    failed = [text.format(meta[name]) for name, ok, text in rules if name in meta]
    if all(ok(value, meta[name]) for name, ok, _ in rules if name in meta):
        return ""
    return " and ".join(failed)


def _check_length(value: Any, meta: dict[str, Any]) -> str:
    """What is wrong with a string's length under ``minLength``/``maxLength``, or ''."""
    if not isinstance(value, str):
        return ""
    low, high = meta.get("minLength", 0), meta.get("maxLength")
    if low <= len(value) and (high is None or len(value) <= high):
        return ""
    need = (
        f"exactly {low}" if low == high else f"at least {low}" if high is None else f"{low}-{high}"
    )
    plural = "" if len(value) == 1 else "s"
    return f"has {len(value)} character{plural}; must have {need}"


# --- semantic checks -------------------------------------------------------------------------


def _check_dataset(spec: DatasetSpec, walker: _Walker, node: yaml.Node, key: str) -> None:
    def line_of(*path: str) -> yaml.Node:
        """The node at ``path`` below the dataset, or the deepest one that exists."""
        current = node
        for name in path:
            found = walker.mapping(current, key).get(name)
            if found is None:
                break
            current = found[1]
        return current

    from pytest_labelquality.formats import check_path, registered

    src = spec.source
    problem: tuple[str, str] | None = None
    if isinstance(src, QuickDrawSource):
        problem = check_path(spec, src.dir, "dir", folder=True)
        for name in src.classes if problem is None else ():
            problem = check_path(spec, f"{src.dir}/{name}.npy", "classes")
            if problem is not None:
                problem = ("classes", f"{problem[1]} for class {name!r}")
                break
        if problem is None and len(src.shape) < 2:
            problem = ("shape", "an image has 2 or 3 dims")
    elif isinstance(src, NpzSource | CsvSource):
        problem = check_path(spec, src.path, "path")
    elif not isinstance(src, BUILTIN_SOURCES):
        problem = registered()[src.FORMAT].check(spec, src)
    if problem is not None:
        where, what = problem
        raise walker.fail(line_of("source", where), f"{key}.source.{where}", what)
    model = spec.model
    if model.name is not None and model.factory is not None:
        raise walker.fail(line_of("model"), f"{key}.model", "set name or factory, not both")
    _check_model_keys(model, walker, line_of, f"{key}.model", images=_may_hold_images(src))
    classes = getattr(src, "classes", None)
    for cls_name in spec.gate.max_class_noise_rate:
        if classes is not None and cls_name not in classes:
            raise walker.fail(
                line_of("gate", "max_class_noise_rate", cls_name),
                f"{key}.gate.max_class_noise_rate.{cls_name}",
                f"unknown class; classes: {', '.join(classes)}",
            )
    pairs = src.flip.pairs if src.flip is not None else {}
    for given, wrong in pairs.items():
        pair_at = (line_of("source", "flip", "pairs", given), f"{key}.source.flip.pairs.{given}")
        if given == wrong:
            raise walker.fail(*pair_at, "a class cannot be flipped into itself")
        for name in (given, wrong):
            if classes is not None and name not in classes:
                raise walker.fail(
                    *pair_at, f"unknown class {name!r}; classes: {', '.join(classes)}"
                )


def _may_hold_images(src: Any) -> bool:
    """Whether a source may load images, whose default model can be a Keras one."""
    if isinstance(src, NpzSource):
        return src.shape is not None
    return isinstance(src, QuickDrawSource) or getattr(src, "FORMAT", "") == "images"


def _check_model_keys(
    model: ModelSpec,
    walker: _Walker,
    line_of: Callable[..., yaml.Node],
    key: str,
    *,
    images: bool,
) -> None:
    """Refuse settings that the chosen model would ignore (its registry entry's ``settings``)."""
    entry = model_entry(model.name) if model.name else None
    # unnamed on images: the default from 5 classes is small_cnn, checked when it is resolved
    keras = model.factory is not None or (entry.takes("keras") if entry else images)
    chosen = model.name or "the default model"
    for name in KERAS_SETTINGS:
        if getattr(model, name) is not None and not keras:
            raise walker.fail(
                line_of("model", name),
                f"{key}.{name}",
                f"applies to Keras models ({', '.join(names_taking('keras'))}, or a factory),"
                f" not to {chosen}; remove it, or set params for a scikit-learn model",
            )
    encoder_named = entry is None or entry.takes("encoder")
    for name in ("encoder", "tokenizer"):
        if getattr(model, name) is not None and (not encoder_named or model.factory):
            raise walker.fail(
                line_of("model", name),
                f"{key}.{name}",
                f"applies to {listed(names_taking('encoder'))}, not to {chosen};"
                " remove it, or name one of them (model.name: encoder_linear)",
            )
    if model.members is not None:
        if entry is None or not entry.takes("members"):
            raise walker.fail(
                line_of("model", "members"),
                f"{key}.members",
                f"applies to {listed(names_taking('members'))}, not to {chosen}",
            )
        for i, member in enumerate(model.members):
            found = model_entry(member)
            if found is not None and (found.members or found.chooses):
                raise walker.fail(
                    line_of("model", "members"),
                    f"{key}.members[{i}]",
                    f"{member} is made of other models; name models that train on folds",
                )
        if len(set(model.members)) != len(model.members):
            raise walker.fail(
                line_of("model", "members"), f"{key}.members", "a member is named twice"
            )
    if model.params and entry is not None and not entry.takes("params"):
        if entry.members:
            problem = (
                f"{chosen}'s members keep their own settings; to tune one, name it"
                " (model.name: hist_gradient_boosting)"
            )
        else:
            problem = f"{chosen} takes no params; its settings are {', '.join(KERAS_SETTINGS)}"
        raise walker.fail(line_of("model", "params"), f"{key}.params", problem)


def _compose(path: Path, text: str | None = None) -> yaml.Node | None:
    try:
        source = path.read_text(encoding="utf-8") if text is None else text
        node: yaml.Node | None = yaml.compose(source, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise SpecError(path, 1, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(path, 1, "", f"not UTF-8 text (byte {exc.start})") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise SpecError(path, line, "", f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:  # a control character in the text: a ReaderError
        line = source[: getattr(exc, "position", 0)].count("\n") + 1
        raise SpecError(path, line, "", f"invalid YAML: {exc}".splitlines()[0]) from None
    if node is not None and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
        raise SpecError(
            path,
            1,
            "",
            f"the YAML expands to more than {MAX_EXPANDED_NODES:,} values through its aliases"
            " (&anchor / *alias); a spec needs far fewer: write the values out",
        )
    return node


#: A spec's YAML, with every alias expanded, may hold at most this many values (a few aliases
#: nested ten deep expand to billions: the "billion laughs").
MAX_EXPANDED_NODES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` holds once every alias is expanded; a node reached through
    several aliases is one object in the graph, so each is sized once."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a node being sized: a cycle counts once (YAML's safe loaders reject it)
    total = 1
    if isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
    return sizes[id(node)]


def load_typed(path: Path, tp: Any, *, text: str | None = None) -> Any:
    """Parse a YAML file (or ``text`` read from it) into ``tp`` (dataclasses, lists, enums...)
    with located errors."""
    root = _compose(path, text)
    if root is None:
        return tp() if isinstance(tp, type) else ()
    return _Walker(path).convert(root, tp, "", {})


def load_spec(path: Path) -> list[DatasetSpec]:
    """Parse and validate a spec file; raises :class:`SpecError` naming file, line and key."""
    walker = _Walker(path)
    root = _compose(path)
    if root is None:
        raise SpecError(path, 1, "datasets", "empty spec; expected a mapping with 'datasets'")
    top = walker.dataclass(root, SpecFile, "")
    nodes = walker.mapping(root, "")["datasets"][1].value
    datasets: list[DatasetSpec] = []
    seen: set[str] = set()
    for i, (ds, node) in enumerate(zip(top.datasets, nodes, strict=True)):
        key = f"datasets[{i}]"
        if ds.name in seen:
            raise walker.fail(node, f"{key}.name", f"duplicate dataset name {ds.name!r}")
        seen.add(ds.name)
        ds = dataclasses.replace(ds, spec_path=path, line=node.start_mark.line + 1)
        _check_dataset(ds, walker, node, key)
        datasets.append(ds)
    return datasets


def _choices(tp: Any, meta: dict[str, Any]) -> tuple[Any, ...]:
    """The values a field may take: its enum's, or its ``choices()`` (a registry's names)."""
    if "choices" in meta:
        return tuple(meta["choices"]())
    return tuple(m.value for m in tp)


# --- JSON Schema -----------------------------------------------------------------------------


def _schema_of(tp: Any, meta: dict[str, Any]) -> dict[str, Any]:
    optional, tp = _is_optional(tp)
    if tp is SourceSpec:
        out: dict[str, Any] = {"oneOf": [_object_schema(c) for c in source_types()]}
    elif dataclasses.is_dataclass(tp):
        out = _object_schema(typing.cast(type[Any], tp))
    elif typing.get_origin(tp) is tuple:
        item_meta = {k: meta[k] for k in ("choices",) if k in meta}
        out = {"type": "array", "items": _schema_of(typing.get_args(tp)[0], item_meta)}
        if "minItems" in meta:
            out["minItems"] = meta["minItems"]
        if meta.get("oneOrMore"):
            out = {"anyOf": [out["items"], out]}
    elif typing.get_origin(tp) is dict:
        value_tp = typing.get_args(tp)[1]
        extra = {} if value_tp is Any else {"additionalProperties": _schema_of(value_tp, meta)}
        out = {"type": "object", **extra}
    elif (isinstance(tp, type) and issubclass(tp, enum.Enum)) or "choices" in meta:
        out = {"enum": list(_choices(tp, meta))}
    else:
        kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
        out = {"type": kinds[tp]}
        for name in (
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "pattern",
            "minLength",
            "maxLength",
        ):
            if name in meta:
                out[name] = meta[name]
    if optional:
        out = {"anyOf": [out, {"type": "null"}]}
    if "doc" in meta:
        out["description"] = meta["doc"]
    return out


def _object_schema(cls: type[Any]) -> dict[str, Any]:
    hints = _hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    if hasattr(cls, "FORMAT"):
        props["format"] = {"const": cls.FORMAT}
        required.append("format")
    for f in _yaml_fields(cls):
        props[f.name] = _schema_of(hints[f.name], dict(f.metadata))
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    if cls.__doc__:
        out["description"] = " ".join(cls.__doc__.split())
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, generated from the dataclasses above."""
    schema = _object_schema(SpecFile)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pytest-labelquality dataset spec",
        **schema,
    }


def main() -> None:
    """Print the JSON Schema (``python -m pytest_labelquality.spec``)."""
    print(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":
    main()
