"""The typed result of one dataset's check: the runner builds it, every output reads it.

Frozen dataclasses, defined once: :meth:`DatasetResult.to_json` gives the results file's entry
(and what crosses xdist), :meth:`DatasetResult.from_json` reads it back and rejects any other
shape, and :func:`json_schema` derives the JSON Schema from the same field types. A field's
JSON name is its own unless its metadata says otherwise (``class`` is a Python keyword). Parts
that the lower layers build as JSON (the model's settings, a source's counts) are read into
their types with their own ``from_json``. Standard library only; cheap to import.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeAlias, Union

from pytest_labelquality import __version__
from pytest_labelquality.gate import Rule

#: A JSON value: what the results carry as the user gave it (a model's ``params``, features).
JsonValue: TypeAlias = Union[  # noqa: UP007 (a recursive alias needs the string form)
    str, int, float, bool, list["JsonValue"], dict[str, "JsonValue"], None
]
JsonObject: TypeAlias = dict[str, JsonValue]

#: The ``$id`` of the results file's schema (``results.schema.json`` in the package).
SCHEMA_ID = "https://pytest-labelquality.invalid/results.schema.json"


class ResultShapeError(ValueError):
    """A results document whose shape is not the one :class:`DatasetResult` defines."""


class JsonRecord:
    """A part of the result with its JSON form, read and written as the whole result's is."""

    def to_json(self) -> JsonObject:
        """This part's JSON object."""
        out = _dump(self)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_json(cls, document: object) -> Self:
        """Read it back; :class:`ResultShapeError` names the first key out of shape."""
        loaded: Self = _load(cls, document, cls.__name__)
        return loaded


class Decision(enum.StrEnum):
    """What a reviewer concluded about an item."""

    CORRECT = "correct"
    FIXED = "fixed"
    AMBIGUOUS = "ambiguous"
    #: The item's duplicates (and leaks) are intended: its groups and pairs stop counting.
    DUPLICATE_OK = "duplicate-ok"
    #: The item belongs, although it is far from every class: it stops counting as an outlier.
    OUTLIER_OK = "outlier-ok"
    #: The item is to be removed: it counts until it is gone.
    REMOVE = "remove"


#: Decisions that take an item out of the gated count (ambiguous items still count).
ACCEPTING = frozenset({Decision.CORRECT, Decision.FIXED})
#: Decisions about duplicates, leaks and outliers rather than labels.
ISSUE_DECISIONS = frozenset({Decision.DUPLICATE_OK, Decision.OUTLIER_OK, Decision.REMOVE})


class WarningCode(enum.StrEnum):
    """What a warning is about, for outputs that treat some warnings apart."""

    WEAK_MODEL = "weak_model"
    UNREADABLE_SKIPPED = "unreadable_skipped"
    STALE_REVIEW = "stale_review"
    PENDING_FIX = "pending_fix"
    TRUSTED_EDITS = "trusted_edits"
    NO_BASELINE = "no_baseline"


@dataclass(frozen=True)
class Notice:
    """A warning: its code and its sentence."""

    code: WarningCode
    message: str


@dataclass(frozen=True)
class SpecRef:
    """Where the dataset is defined."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Skipped:
    """An unreadable file left out (``source.skip_unreadable``), and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Source(JsonRecord):
    """Where the items came from; for an image folder, what loading it counted.

    ``files`` found in class folders or the labels table, ``decoded`` this run (not from the
    decoding cache), ``ignored`` (not images), ``skipped`` (unreadable); the working ``size``
    and its ``mode`` (``grey`` or ``rgb``)."""

    origin: str
    kind: str
    files: int | None = None
    decoded: int | None = None
    ignored: int | None = None
    skipped: tuple[Skipped, ...] | None = None
    size: tuple[int, ...] | None = None
    mode: str | None = None


@dataclass(frozen=True)
class Estimator:
    """One of cleanlab's estimators' counts."""

    count: int
    rate: float


@dataclass(frozen=True)
class Canary:
    """Known flips injected into the out-of-fold probabilities, and how many were found."""

    injected: int
    recovered: int | None = None
    recall: float | None = None
    precision: float | None = None
    count_before: int | None = None
    count_after: int | None = None
    count_rise: int | None = None


@dataclass(frozen=True)
class DetectionMethod(JsonRecord):
    """How suspects were found: the score they are ranked by, the filter, and the count that
    sets how many are flagged (an estimator's name, or ``len(find_label_issues)``)."""

    ranked_by: str
    filter_by: str
    count: str
    #: The temperature the probabilities were scaled by before counting (none: not calibrated).
    temperature: float | None = None


@dataclass(frozen=True)
class Noise:
    """The estimate: the counted items (flagged and not accepted by review), its interval."""

    rate: float
    count: int
    flagged: int
    reviewed: int
    interval: tuple[float, float]
    method: DetectionMethod
    estimators: dict[str, Estimator]
    band: tuple[float, float]
    canary: Canary


@dataclass(frozen=True)
class RuleFailure:
    """A failed rule as the outputs show it (see :class:`gate.FailedRule`)."""

    rule: Rule
    value: float
    limit: float
    class_name: str | None = field(metadata={"json": "class"})
    message: str


@dataclass(frozen=True)
class Gate:
    """The spec's limits and what they decided."""

    max_noise_rate: float
    max_class_noise_rate: dict[str, float]
    max_increase: float | None
    max_new_suspects: int | None
    max_new_suspect_share: float | None
    change_failures: tuple[str, ...]
    failed_rules: tuple[RuleFailure, ...]
    passed: bool

    @property
    def rules_on_change_failed(self) -> bool:
        """Whether a rule that counts new suspects failed (then outputs list those)."""
        counting = (Rule.MAX_NEW_SUSPECTS, Rule.MAX_NEW_SUSPECT_SHARE)
        return any(r.rule in counting for r in self.failed_rules)


@dataclass(frozen=True)
class Trust:
    """With a trusted commit: the commit whose baseline and reviews were used, and the files
    the change edits (their edits take effect after merge)."""

    ref: str
    edited: tuple[str, ...]


@dataclass(frozen=True)
class Reviews:
    """Reviews that applied (decision per item id), and those that no longer do."""

    decisions: dict[str, Decision]
    stale: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """The dataset against its baseline (``changed_suspects``: the older name of
    ``new_suspects``, kept for readers of earlier results)."""

    baseline_commit: str | None
    baseline_noise_rate: float
    noise_rate_change: float
    changed_items: int
    new_suspects: tuple[str, ...]
    changed_suspects: tuple[str, ...]
    unchanged_new_suspects: tuple[str, ...]
    resolved_suspects: tuple[str, ...]
    accepted_by_review: tuple[str, ...]
    still_suspect: int


@dataclass(frozen=True)
class ClassRow:
    """One class's share of counted items among the items given its label."""

    name: str
    items: int
    flagged: int
    rate: float
    max_rate: float | None
    passed: bool


@dataclass(frozen=True)
class Preview:
    """What the report shows of an item: an image (a ``data:`` PNG), a text or feature values."""

    image: str | None = None
    thumbnail: bool | None = None
    text: str | None = None
    chars: int | None = None
    features: dict[str, JsonValue] | None = None


@dataclass(frozen=True)
class Neighbour:
    """An item near a suspect in the encoder's embedding space (cosine ``similarity``): of the
    class named, and one whose given label the model agrees with."""

    index: int
    id: str
    class_name: str = field(metadata={"json": "class"})
    similarity: float


@dataclass(frozen=True)
class Suspect:
    """One item of the ranking shown to reviewers; ``rank`` 1 is the most suspect of all.

    Where the model trains on an encoder's embeddings, ``suggested_neighbours`` and
    ``given_neighbours`` are its nearest items of its suggested and of its given class, nearest
    first (their previews are the dataset's ``neighbour_previews``)."""

    rank: int
    index: int
    id: str
    hash: str
    given: str
    suggested: str
    suggested_prob: float
    score: float
    content_hash: str | None = None
    review: Decision | None = None
    given_prob: float | None = None
    below_estimate: bool | None = None
    preview: Preview | None = None
    #: ``file:line "the text's beginning..."`` where the id is a content hash (a text table
    #: without an id column): how outputs name the item to a person.
    location: str | None = None
    suggested_neighbours: tuple[Neighbour, ...] | None = None
    given_neighbours: tuple[Neighbour, ...] | None = None

    @property
    def name(self) -> str:
        """How outputs name the item: its location where it has one, else its id."""
        return self.location or self.id

    @property
    def accepted(self) -> bool:
        """Whether a review took it out of the count."""
        return self.review in ACCEPTING


@dataclass(frozen=True)
class Histogram:
    """Label-quality scores in bins, and the highest score flagged."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    cutoff: float | None


@dataclass(frozen=True)
class CrossValidation:
    """The folds of the out-of-fold model."""

    folds: int
    seed: int
    jobs: int


@dataclass(frozen=True)
class Incremental(JsonRecord):
    """A re-check that reused the fold models of the lineage's last full run (``base_run``):
    items whose predictions were reused (``relabelled`` of them), and new or edited items
    ``scored`` by the fold models that never saw them. A model made of others: each of its
    ``members``' (every member sees the same items, so the counts are theirs)."""

    reused: int
    relabelled: int
    scored: int
    base_run: str | None = None
    members: dict[str, Incremental] | None = None


@dataclass(frozen=True)
class EmbeddingUse(JsonRecord):
    """An encoder's work: items encoded, items whose vectors came from the cache, seconds."""

    encoded: int
    reused: int
    seconds: float


@dataclass(frozen=True)
class CacheUse:
    """What the cache held: its key, hit/partial/incremental/miss, entries repaired."""

    key: str
    status: str
    folds_cached: int
    dir: str
    incremental: Incremental | None
    repaired: tuple[str, ...]
    embeddings: EmbeddingUse | None


@dataclass(frozen=True)
class Timings:
    """Seconds per stage."""

    load: float
    fingerprint: float
    train_and_detect: float
    total: float
    fold_seconds: tuple[float, ...]


@dataclass(frozen=True)
class Candidate:
    """A model ``model: auto`` tried: its accuracy on the first fold, its training seconds."""

    accuracy: float
    seconds: float


@dataclass(frozen=True)
class AutoChoice(JsonRecord):
    """``model: auto``'s choice among its candidates, on a ``budget`` of ``held_out`` items."""

    chosen: str
    candidates: dict[str, Candidate]
    budget: str
    held_out: int


@dataclass(frozen=True)
class Blend(JsonRecord):
    """``tfidf_encoder``'s choice (a member or ``mean``) and each option's out-of-fold
    accuracy against the given labels."""

    chosen: str
    accuracy: dict[str, float]


@dataclass(frozen=True)
class ModelUse(JsonRecord):
    """The model that trained the folds, its defaults resolved (what its cache key holds), and
    what chose it (``auto``) or what it chose (``blend``). An encoder model names its encoder's
    ``encoder_identity``: the weights' digest and how it reads the items."""

    name: str
    factory: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    params: dict[str, JsonValue] | None = None
    mirror: bool | None = None
    encoder: str | None = None
    tokenizer: str | None = None
    encoder_identity: dict[str, str] | None = None
    members: tuple[str, ...] | None = None
    auto: AutoChoice | None = None
    blend: Blend | None = None


@dataclass(frozen=True)
class Exemplar:
    """An item the model most confidently agrees is of its class."""

    id: str
    p: float
    preview: Preview


@dataclass(frozen=True)
class Ranking:
    """Every item, most suspect first, as columns (written to the ranking file)."""

    rank: tuple[int, ...]
    index: tuple[int, ...]
    id: tuple[str, ...]
    given: tuple[str, ...]
    suggested: tuple[str, ...]
    suggested_prob: tuple[float, ...]
    score: tuple[float, ...]
    flagged: tuple[int, ...]


@dataclass(frozen=True)
class Injected:
    """The flagged items against flips the spec injected (``flips:``)."""

    count: int
    flagged_and_flipped: int
    precision: float
    recall: float
    f1: float
    indices: tuple[int, ...]


@dataclass(frozen=True)
class IssueItem:
    """One item of a duplicate group, a pair or the outliers, as a reviewer finds it."""

    index: int
    id: str
    class_name: str = field(metadata={"json": "class"})
    split: str | None = None
    location: str | None = None
    preview: Preview | None = None
    #: What a review of it records (its content and label), for ``reviews add``.
    hash: str | None = None
    #: Against a baseline: whether this change added or relabelled it.
    changed: bool | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """Items of identical content; ``conflicting`` when their labels differ."""

    items: tuple[IssueItem, ...]
    conflicting: bool


@dataclass(frozen=True)
class ItemPair:
    """Two near-duplicate items (or, in ``leak_pairs``, exact ones: ``similarity`` None)."""

    a: IssueItem
    b: IssueItem
    similarity: float | None


@dataclass(frozen=True)
class Outlier:
    """An item that belongs to no class: its Mahalanobis distance to the nearest class mean
    (see :mod:`data_issues`)."""

    item: IssueItem
    distance: float
    #: Where the item is a text in another language than most: its language.
    language: str | None = None


@dataclass(frozen=True)
class NewIssues:
    """Against a baseline: the groups, pairs and outliers that hold an item the change added
    or relabelled."""

    conflicting_groups: int
    near_pairs: int
    outliers: int
    leaks: int

    @property
    def total(self) -> int:
        """All of them: what ``gate.max_new_data_issues`` limits."""
        return self.conflicting_groups + self.near_pairs + self.outliers + self.leaks

    def described(self, *, leaks: bool) -> str:
        """``2 conflicting group(s), 5 near pair(s), 1 outlier(s)`` (and the leaks)."""
        text = (
            f"{self.conflicting_groups} conflicting group(s), {self.near_pairs} near pair(s),"
            f" {self.outliers} outlier(s)"
        )
        return text + (f", {self.leaks} leak(s)" if leaks else "")


@dataclass(frozen=True)
class DataIssues:
    """Duplicates, leaks between splits and outliers (see :mod:`data_issues`): counts of all,
    and the first :data:`runner.ISSUES_LISTED` of each kind listed (conflicting groups first,
    pairs most similar first, outliers farthest first)."""

    vectors: str
    near_similarity: float
    exact_groups: int
    conflicting_groups: int
    redundant: int
    near_pairs: int
    outliers: int
    outlier_cutoff: float
    language: str | None
    leaks: int
    #: Groups, pairs and outliers that reviews (duplicate-ok, outlier-ok) took out of the counts.
    accepted: int
    new: NewIssues | None
    splits: dict[str, int] | None
    imbalance: float
    groups: tuple[DuplicateGroup, ...]
    pairs: tuple[ItemPair, ...]
    outlier_items: tuple[Outlier, ...]
    leak_pairs: tuple[ItemPair, ...]

    def listed_items(self) -> dict[str, IssueItem]:
        """Every item listed in a group, a pair or the outliers, by id."""
        found: dict[str, IssueItem] = {}
        for group in self.groups:
            found.update((i.id, i) for i in group.items)
        for pair in (*self.pairs, *self.leak_pairs):
            found.update(((pair.a.id, pair.a), (pair.b.id, pair.b)))
        found.update((o.item.id, o.item) for o in self.outlier_items)
        return found


@dataclass(frozen=True)
class DatasetResult:
    """Everything one dataset's check found, decided and used.

    ``exemplars`` (images, without embeddings): a few items per class the model most
    confidently agrees with; ``neighbour_previews``: the previews of the suspects' neighbours,
    by item id, each once."""

    name: str
    spec: SpecRef
    source: Source
    items: int
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    noise: Noise
    gate: Gate
    trust: Trust | None
    reviews: Reviews
    baseline: Change | None
    per_class: tuple[ClassRow, ...]
    oof_accuracy: float
    flagged: tuple[Suspect, ...]
    noise_matrix: tuple[tuple[int, ...], ...]
    score_histogram: Histogram
    cv: CrossValidation
    warnings: tuple[Notice, ...]
    backend: str
    model: ModelUse
    versions: dict[str, str]
    cache: CacheUse
    timings: Timings
    below_estimate: tuple[Suspect, ...]
    ranking: Ranking | None = None
    exemplars: dict[str, tuple[Exemplar, ...]] | None = None
    neighbour_previews: dict[str, Preview] | None = None
    baseline_entry: JsonObject | None = None
    injected: Injected | None = None
    ranking_file: str | None = None
    issues: DataIssues | None = None

    @property
    def passed(self) -> bool:
        """Whether the gate passed."""
        return self.gate.passed

    @property
    def counted_suspects(self) -> tuple[Suspect, ...]:
        """The flagged items no review accepted, most suspect first."""
        return tuple(s for s in self.flagged if not s.accepted)

    @property
    def gated_suspects(self) -> tuple[Suspect, ...]:
        """The suspects the failing rules counted: the new ones when a rule on the change
        failed, else every counted suspect."""
        suspects = self.counted_suspects
        if self.baseline is not None and self.gate.rules_on_change_failed:
            new = set(self.baseline.new_suspects)
            return tuple(s for s in suspects if s.id in new)
        return suspects

    def has_warning(self, code: WarningCode) -> bool:
        """Whether a warning of ``code`` was raised."""
        return any(w.code is code for w in self.warnings)

    def to_json(self) -> JsonObject:
        """The results file's entry for this dataset."""
        out = _dump(self)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_json(cls, document: object) -> DatasetResult:
        """Read an entry back; :class:`ResultShapeError` names the first key out of shape."""
        loaded: DatasetResult = _load(cls, document, "dataset")
        return loaded


@dataclass(frozen=True)
class CheckError:
    """A dataset or spec file that could not be checked: its test id and first error line."""

    test: str
    error: str


@dataclass(frozen=True)
class RunResult:
    """Every dataset of a run and what could not be checked: the results file's document."""

    datasets: tuple[DatasetResult, ...]
    errors: tuple[CheckError, ...] = ()
    plugin: str = "pytest-labelquality"
    version: str = __version__

    @property
    def passed(self) -> bool:
        """Whether every dataset passed and nothing failed to be checked."""
        return all(d.passed for d in self.datasets) and not self.errors

    @property
    def failed(self) -> tuple[DatasetResult, ...]:
        """The datasets whose gate failed."""
        return tuple(d for d in self.datasets if not d.passed)

    def to_json(self) -> JsonObject:
        """The results file: datasets in spec order (file, then line)."""
        ordered = sorted(self.datasets, key=lambda d: (d.spec.file, d.spec.line))
        return {
            "plugin": self.plugin,
            "version": self.version,
            "passed": self.passed,
            "datasets": [d.to_json() for d in ordered],
            "errors": [_dump(e) for e in self.errors],
        }

    @classmethod
    def from_json(cls, document: object) -> RunResult:
        """Read a results file's document back (``passed`` is derived, not read)."""
        loaded: RunResult = _load(cls, document, "results")
        return loaded


def _json_name(item: dataclasses.Field[Any]) -> str:
    name: str = item.metadata.get("json", item.name)
    return name


def _required(item: dataclasses.Field[Any]) -> bool:
    """Whether a field has no default (its key must be in the JSON)."""
    return item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING


def _dump(value: object) -> JsonValue:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: JsonObject = {}
        for item in dataclasses.fields(value):
            name, inner = _json_name(item), getattr(value, item.name)
            if inner is not None or item.default is dataclasses.MISSING:
                out[name] = _dump(inner)
        return out
    if isinstance(value, enum.Enum):
        return value.value  # type: ignore[no-any-return]
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _dump(v) for k, v in value.items()}
    return value  # type: ignore[return-value]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_json(hint: Any) -> bool:
    """Whether ``hint`` is :data:`JsonValue` (typing may rebuild the union it names)."""
    return hint is JsonValue or {str, int, float, bool} <= set(typing.get_args(hint))


def _load(hint: Any, value: object, where: str) -> Any:
    """``value`` checked against ``hint`` and built into it."""
    if _is_json(hint):
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _load(inner, value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ResultShapeError(f"{where}: expected an object, got {type(value).__name__}")
        hints, kwargs = _hints(hint), {}
        for item in dataclasses.fields(hint):
            name = _json_name(item)
            if name not in value:
                if _required(item):
                    raise ResultShapeError(f"{where}.{name}: missing")
                continue
            kwargs[item.name] = _load(hints[item.name], value[name], f"{where}.{name}")
        return hint(**kwargs)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ResultShapeError(f"{where}: unknown value {value!r}") from None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ResultShapeError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ResultShapeError(f"{where}: expected {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_load(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ResultShapeError(f"{where}: expected an object, got {type(value).__name__}")
        return {str(k): _load(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(hint, value, where)


def _scalar(hint: type, value: object, where: str) -> object:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ResultShapeError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")


def json_schema() -> JsonObject:
    """The JSON Schema (draft 2020-12) of a results file, derived from the dataclasses."""
    definitions: JsonObject = {}
    _schema(RunResult, definitions)
    document = definitions.pop("RunResult")
    assert isinstance(document, dict)
    assert isinstance(document["properties"], dict)
    document["properties"]["passed"] = {"type": "boolean"}
    document["required"] = ["plugin", "version", "passed", "datasets", "errors"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "pytest-labelquality results",
        **document,
        "$defs": definitions,
    }


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(hint: Any, definitions: JsonObject) -> JsonObject:
    if _is_json(hint):
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        (inner,) = (a for a in args if a is not type(None))
        return {"anyOf": [_schema(inner, definitions), {"type": "null"}]}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint.__name__ not in definitions:
            definitions[hint.__name__] = {}  # a placeholder while its fields are derived
            hints = _hints(hint)
            properties: JsonObject = {}
            required: list[JsonValue] = []
            for item in dataclasses.fields(hint):
                name = _json_name(item)
                properties[name] = _schema(hints[item.name], definitions)
                if _required(item):
                    required.append(name)
            definitions[hint.__name__] = {
                "type": "object",
                "description": (hint.__doc__ or "").split("\n\n")[0].strip(),
                "required": required,
                "properties": properties,
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema(args[0], definitions)}
        items: list[JsonValue] = [_schema(a, definitions) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], definitions)}
    return {"type": _SCALARS[hint]}


def main() -> None:
    """Print the results file's JSON Schema (``python -m pytest_labelquality.result``)."""
    import json

    print(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":
    main()
