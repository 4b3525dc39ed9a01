"""One dataset, end to end: load, fingerprint, out-of-fold training, detection, gate, result.

The result is a :class:`result.DatasetResult`: it travels from xdist workers as its JSON, fills
the JSON file, and is what every output reads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality import __version__, cache_keys
from pytest_labelquality.auto import candidate_spec, candidates, choose
from pytest_labelquality.backends import LOCAL, Backend
from pytest_labelquality.baseline import (
    Change,
    baseline_entry,
    baseline_path,
    compare,
    load_baseline,
)
from pytest_labelquality.cache import ArrayCache, CacheRoot, as_array, from_array
from pytest_labelquality.crossval import OutOfFold, first_fold, out_of_fold
from pytest_labelquality.data_issues import EXPECT as ISSUE_ARRAYS
from pytest_labelquality.data_issues import (
    NEAR_SIMILARITY,
    Findings,
    Previous,
    find,
    search_features,
)
from pytest_labelquality.dataset import DataKind, Dataset
from pytest_labelquality.detection import (
    CANARY_MIN,
    Detection,
    cleanlab_version,
    detect,
    resolved,
)
from pytest_labelquality.embeddings import embed
from pytest_labelquality.encoders import load_encoder
from pytest_labelquality.files import relative_path
from pytest_labelquality.gate import Rule, Verdict, decide
from pytest_labelquality.issue_results import IssueSearch, issue_counts, issue_result
from pytest_labelquality.model_registry import model_entry
from pytest_labelquality.models import ModelConfig, extras_installed, resolve_model
from pytest_labelquality.neighbours import nearest
from pytest_labelquality.previews import preview, previews
from pytest_labelquality.resources import cores, passive_openmp
from pytest_labelquality.result import (
    AutoChoice,
    Blend,
    CacheUse,
    Canary,
    ClassRow,
    CrossValidation,
    DataIssues,
    DatasetResult,
    DetectionMethod,
    EmbeddingUse,
    Estimator,
    Exemplar,
    Gate,
    Histogram,
    Incremental,
    Injected,
    ModelUse,
    Neighbour,
    Noise,
    Notice,
    Preview,
    Ranking,
    Reviews,
    RuleFailure,
    Source,
    SpecRef,
    Suspect,
    Timings,
    Trust,
    WarningCode,
)
from pytest_labelquality.result import Change as ChangeSummary
from pytest_labelquality.reviews import (
    ReviewOutcome,
    apply_reviews,
    load_decisions,
    load_reviews,
    reviews_path,
)
from pytest_labelquality.source_specs import QuickDrawSource
from pytest_labelquality.sources import (
    check_folds,
    item_keys,
    load_dataset,
    review_hash,
)
from pytest_labelquality.spec import DatasetSpec, ModelSpec
from pytest_labelquality.trust import read_trusted

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.encoders.base import Encoder, Kind
    from pytest_labelquality.model_registry import Kind as ModelKind

Progress = Callable[[str], None]
WEAK_MODEL_SKILL = 0.3
#: A model that disagrees with more of the labels it accepts (the items it does not flag) than
#: this may be counting its own mistakes as wrong labels: it is called too weak when, beside
#: that, it disagrees with more of them than the share it flags, or the canary's count rises by
#: more than MAX_CANARY_RISE times the labels the canary flipped (a count that grows faster than
#: the noise put in counts the model's errors too). Measured on digits, wine, breast cancer and
#: CIFAR-10 photos, with and without flips: useful models disagree with 2% to 14% of what they
#: accept and their canary rises 0.7 to 1.19 times; the weak ones (a 45% 10-class forest, HOG
#: boosting at 44% on photos) 14% to 22%, rising 1.28 to 1.62 times or below what they flag.
MAX_ACCEPTED_DISAGREEMENT = 0.12
MAX_CANARY_RISE = 1.25
#: Disagreeing with more than this share of the labels it accepts is enough on its own: a
#: one-tree forest at 55.6% on clean digits flagged 27% (disagreeing with 23.6%, its canary
#: rising 1.24 times) and HOG boosting at 42.7% on 2,000 CIFAR photos flagged 44% (23.3%, 1.17
#: times), both unwarned by the rule above; useful models measured at most 17.2% (encoder_linear
#: on the same photos, which that rule calls weak already).
MAX_ACCEPTED_DISAGREEMENT_ALONE = 0.2
HISTOGRAM_BINS = 20
EXEMPLARS = 3
EXEMPLAR_CLASSES = 40
#: The suspects' neighbours get previews, most suspect first, up to this many items in all
#: (each item once); the others are listed by id and similarity.
NEIGHBOUR_PREVIEWS = 1000


def check_dataset(
    spec: DatasetSpec,
    *,
    cache_dir: CacheRoot,
    progress: Progress,
    keep_items: bool = False,
    trusted_ref: str | None = None,
    baseline_dir: Path | None = None,
    decisions_ref: str | None = None,
    show_top: int = 0,
    backend: Backend = LOCAL,
    root: Path | None = None,
) -> DatasetResult:
    """Run the whole check for one dataset; raises ``LabelQualityError`` subclasses.

    With ``keep_items`` the result also carries what a new baseline needs (every item's hash);
    with ``trusted_ref`` the baseline and reviews are read as at that commit, with
    ``baseline_dir`` the baseline from that store instead; reviews recorded at
    ``decisions_ref`` (maintainers' decisions) are added to them. ``show_top`` also
    lists the items among the ``show_top`` most suspect of the ranking that are below the
    estimated count (``below_estimate``), for reviewers who look further. Folds train where
    ``backend`` says; ``cache_dir`` may be a folder or an fsspec URL that its workers share.
    Paths in the result are relative to ``root`` (pytest's rootdir) where they lie inside it.
    """
    import numpy as np

    passive_openmp()
    start = time.perf_counter()
    data = load_dataset(spec, cache_dir=cache_dir)
    check_folds(data, spec.cv.folds)
    loaded = time.perf_counter()
    repaired: list[str] = []
    cache = ArrayCache(cache_dir, on_repair=repaired.append)
    cache.check_usable()
    data_key = cache_keys.data_key(data)
    keys: dict[str, tuple[str, str]] | None = None  # hashed when needed: a warm run skips it

    def content() -> npt.NDArray[np.str_]:
        nonlocal keys
        keys = keys or item_keys(data)
        return np.array([digest for digest, _ in keys.values()])

    chosen: AutoChoice | None = None
    model_spec = spec.model
    asked = model_entry(model_spec.name) if model_spec.name else None
    if asked is not None and asked.chooses:
        chosen = _choose_model(spec, data, data_key, cache, content, progress)
        chosen_entry = model_entry(chosen.chosen)
        assert chosen_entry is not None
        model_spec = candidate_spec(model_spec, chosen_entry)
    config = _resolve(spec, data, model_spec)
    run_key, _ = _run_keys(spec, data_key, _trained_as(config, backend))
    detection = resolved(spec.detection, soft_probabilities=config.soft_probabilities)
    detection_key = cache_keys.detection_key(
        run_key, detection, cleanlab=cleanlab_version(), plugin=__version__
    )
    hashed = time.perf_counter()
    folds_cached = spec.cv.folds
    fold_seconds: tuple[float, ...] = ()
    incremental: Incremental | None = None
    embeddings: EmbeddingUse | None = None
    blend: Blend | None = None
    entry = _cached_detection(cache, detection_key, data)
    if entry is not None and not _neighbours_cover(entry, show_top):
        progress(
            f"{spec.name}: the cached detection holds the nearest neighbours of fewer items than"
            f" --label-quality-show-top {show_top} shows; detecting again"
        )
        entry = None
    if entry is not None:
        found = entry
        progress(f"{spec.name}: cache hit, nothing to train")
    else:
        progress(f"{spec.name}: {len(data)} items, {len(data.class_names)} classes, {config.name}")
        oof = _out_of_fold(
            spec, data, data_key, config, model_spec, cache, content(), progress, backend
        )
        folds_cached, fold_seconds = oof.folds_cached, oof.fold_seconds
        incremental = oof.incremental
        embeddings, blend = oof.embeddings, oof.blend
        trained = time.perf_counter()
        found = detect(data.labels, oof.pred_probs, detection, seed=spec.cv.seed)
        if oof.vectors is not None:  # while the embeddings are in memory, not on a warm run
            found = _with_neighbours(found, oof.vectors, data, show_top, progress, spec.name)
        cache.save(detection_key, found.to_arrays())
        progress(f"{spec.name}: detection in {time.perf_counter() - trained:.1f}s")
    progress(honest_count_line(spec.name, len(data), found))
    issues = (
        _data_issues(spec, data, data_key, config, cache, content, progress)
        if spec.checks.enabled
        else None
    )
    detected = time.perf_counter()
    judged = _judge(
        spec,
        data,
        found,
        keys,
        keep_items=keep_items,
        trusted_ref=trusted_ref,
        baseline_dir=baseline_dir,
        decisions_ref=decisions_ref,
        root=root,
        issues=issues,
    )
    if entry is not None:
        status = "hit"
    elif incremental is not None:
        status = "incremental"
    else:
        status = "partial" if folds_cached else "miss"
    model = dataclasses.replace(ModelUse.from_json(config.as_dict()), auto=chosen, blend=blend)
    use = CacheUse(
        key=detection_key,
        status=status,
        folds_cached=folds_cached,
        dir=relative_path(cache_dir, root) if isinstance(cache_dir, Path) else str(cache_dir),
        incremental=incremental,
        repaired=tuple(repaired),
        embeddings=embeddings,
    )
    timings = Timings(
        load=round(loaded - start, 3),
        fingerprint=round(hashed - loaded, 3),
        train_and_detect=round(detected - hashed, 3),
        total=round(time.perf_counter() - start, 3),
        fold_seconds=tuple(round(s, 3) for s in fold_seconds),
    )
    return _result(
        spec,
        data,
        found,
        judged,
        show_top=show_top,
        backend=backend.name.value,
        model=model,
        versions={**config.versions(), "cleanlab": cleanlab_version()},
        cache=use,
        timings=timings,
        root=root,
    )


def _data_issues(
    spec: DatasetSpec,
    data: Dataset,
    data_key: str,
    config: ModelConfig,
    cache: ArrayCache,
    content: Callable[[], npt.NDArray[np.str_]],
    progress: Progress,
) -> IssueSearch:
    """Duplicates, leaks and outliers, found on the encoder's embeddings where the model has
    one (read from their cache) and on the raw features otherwise; cached, so a warm run
    searches nothing."""
    kind = "text" if data.kind is DataKind.TEXT else "image"
    vectors = f"{kind} embeddings" if config.uses_encoder else "features"
    threshold = spec.checks.near_similarity or NEAR_SIMILARITY[vectors]
    what = f"{config.encoder} embeddings" if config.uses_encoder else "raw features"
    identity = config.encoder_identity if config.uses_encoder else None
    key = cache_keys.data_issues_key(data_key, identity or vectors, threshold)
    entry = cache.load(key, ISSUE_ARRAYS)
    found = Findings.from_arrays(entry, len(data)) if entry is not None else None
    if found is None:
        start = time.perf_counter()
        previous, pointer = None, None
        if identity:  # an encoder's vector of a content never changes: search what is new
            pointer = cache_keys.data_issues_lineage_key(
                identity, threshold, f"{spec.spec_path.name}:{spec.name}"
            )
            previous = _previous_search(cache, pointer)
            table, _ = _embedded(spec, data, config, cache, content(), progress)
            points = table.features
        else:
            points = search_features(data)
        found = find(
            points,
            content(),
            data.labels,
            threshold=threshold,
            images=_pixels(data),
            texts=data.features if data.kind is DataKind.TEXT else None,
            seed=spec.cv.seed,
            previous=previous,
        )
        cache.save(key, {**found.to_arrays(), "content": content()})
        if pointer is not None:
            cache.save(pointer, {"meta": as_array({"key": key})})
            old = previous.key if previous is not None else key
            if old != key:  # one entry per dataset, not one per change
                ArrayCache(cache.root).discard(old, "superseded")  # not a repair
        searched = "the new items" if previous is not None else "all items"
        progress(
            f"{spec.name}: duplicates and outliers searched on {what} ({searched}) in"
            f" {time.perf_counter() - start:.1f}s"
        )
    return IssueSearch(found, what, threshold)


def _previous_search(cache: ArrayCache, pointer: str) -> Previous | None:
    """The last search of this dataset under these vectors, if it is still in the cache."""
    last = cache.load(pointer, {"meta": ("U", ())})
    if last is None:
        return None
    old_key = str(from_array(last["meta"]).get("key", ""))
    entry = cache.load(old_key, {**ISSUE_ARRAYS, "content": ("U", ("n",))})
    found = Findings.from_arrays(entry, len(entry["content"])) if entry is not None else None
    if entry is None or found is None:
        return None
    return Previous(found, entry["content"], old_key)


def _pixels(data: Dataset) -> npt.NDArray[Any] | None:
    """The items as images at the working size, where they are images."""
    if data.kind is DataKind.IMAGE:
        return data.features
    if data.image_shape is not None:
        return data.features.reshape(len(data), *data.image_shape)
    return None


def _cached_detection(cache: ArrayCache, key: str, data: Dataset) -> Detection | None:
    """The cached detection of this run, if its entry fits the dataset."""
    import numpy as np

    n, k = len(data), len(data.class_names)
    arrays = {"scores": ("f", (n,)), "suggested": ("iu", (n,)), "suggested_prob": ("f", (n,))}
    entry = cache.load(key, {**arrays, "flagged": ("iu", (None,)), "meta": ("U", ())})
    if entry is None:
        return None
    try:
        found = Detection.from_arrays(entry)
    except (ValueError, KeyError, TypeError, IndexError):
        cache.discard(key, "holding unreadable metadata")
        return None
    flagged, suggested = found.flagged, found.suggested
    if (
        (len(flagged) and (flagged.min() < 0 or flagged.max() >= n))
        or len(np.unique(flagged)) != len(flagged)
        or (n and (suggested.min() < 0 or suggested.max() >= k))
        or not np.isfinite(found.scores).all()
    ):
        cache.discard(key, "holding items or classes outside this dataset")
        return None
    problem = found.neighbours.problem(n) if found.neighbours is not None else ""
    if problem:
        cache.discard(key, problem)
        return None
    return found


def _shown(found: Detection, show_top: int) -> npt.NDArray[np.int64]:
    """The items the report can show: the flagged ones and the ``show_top`` most suspect."""
    import numpy as np

    top = np.argsort(found.scores, kind="stable")[:show_top]
    return np.union1d(found.flagged, top).astype(np.int64)


def _neighbours_cover(found: Detection, show_top: int) -> bool:
    """Whether a cached detection has the neighbours of every item the report will show (an
    entry of a run without embeddings has none to have)."""
    return found.neighbours is None or found.neighbours.covers(_shown(found, show_top))


def _with_neighbours(
    found: Detection,
    vectors: npt.NDArray[Any],
    data: Dataset,
    show_top: int,
    progress: Progress,
    name: str,
) -> Detection:
    """``found`` with the nearest neighbours in embedding space of the items it shows."""
    start = time.perf_counter()
    shown = _shown(found, show_top)
    near = nearest(vectors, data.labels, found.suggested, shown)
    took = time.perf_counter() - start
    progress(f"{name}: nearest neighbours of {len(shown)} items in {took:.1f}s")
    return dataclasses.replace(found, neighbours=near)


def _resolve(spec: DatasetSpec, data: Dataset, model: ModelSpec) -> ModelConfig:
    config = _resolve_only(spec, data, model)
    if config.encoder:  # what makes the embeddings is part of every cache key of the run, and
        # of a model made of others that embeds (``tfidf_encoder``, for its ``encoder_linear``)
        encoder = _encoder(spec, data, config)
        reads = FILE_READS if _reads_files(encoder, data) else "pixels"
        identity = {**encoder.identity(), "reads": reads}
        config = dataclasses.replace(config, encoder_identity=identity)
    return config


#: How an encoder with its own resolution reads an image folder's files (version it when
#: :class:`~pytest_labelquality.formats.images.FileImages` changes what it returns).
FILE_READS = "files:square-crop:2"  # 2: large images reduced by whole factors first


def _reads_files(encoder: Encoder, data: Dataset) -> bool:
    """Whether the encoder reads the original files (an image folder) or the features."""
    return bool(encoder.resolution) and len(data.files) == len(data) > 0


def _encoder(spec: DatasetSpec, data: Dataset, config: ModelConfig) -> Encoder:
    """The encoder of ``config``, loaded once per process."""
    assert config.encoder is not None
    kind: Kind = "text" if data.kind is DataKind.TEXT else "image"
    where = (config.encoder, config.tokenizer, str(spec.base_dir), kind)
    if where not in _ENCODERS:
        _ENCODERS[where] = load_encoder(
            config.encoder, kind=kind, tokenizer=config.tokenizer, base_dir=spec.base_dir
        )
    return _ENCODERS[where]


_ENCODERS: dict[tuple[str, str | None, str, str], Encoder] = {}


def _resolve_only(spec: DatasetSpec, data: Dataset, model: ModelSpec) -> ModelConfig:
    return resolve_model(
        model,
        image=data.kind is DataKind.IMAGE,
        spec_dir=spec.base_dir,
        train_items=len(data) - len(data) // spec.cv.folds,
        # Quick, Draw!'s classes are objects, whose drawings keep their label when mirrored
        mirror_default=isinstance(spec.source, QuickDrawSource),
        text=data.kind is DataKind.TEXT,
        classes=len(data.class_names),
        colour=data.kind is DataKind.IMAGE and data.features.ndim == 4,
    )


def _trained_as(config: ModelConfig, backend: Backend) -> ModelConfig:
    """``config`` with the threads TensorFlow trains it with, which change its results: one
    per fold task on a cluster, else this process's cores (not cut by load)."""
    if not config.trains_tensorflow:
        return config
    return dataclasses.replace(config, threads=cores(spinning=False) if backend.local else 1)


def _run_keys(spec: DatasetSpec, data_key: str, config: ModelConfig) -> tuple[str, str]:
    """The cache keys of a run (this data, model and folds) and of its lineage (the same dataset
    and settings, whatever the data: where a small change finds its base)."""
    folds, seed = spec.cv.folds, spec.cv.seed
    return (
        cache_keys.run_key(data_key, config, folds=folds, seed=seed),
        cache_keys.lineage_key(spec.spec_path.name, spec.name, config, folds=folds, seed=seed),
    )


def _out_of_fold(
    spec: DatasetSpec,
    data: Dataset,
    data_key: str,
    config: ModelConfig,
    model: ModelSpec,
    cache: ArrayCache,
    content: npt.NDArray[np.str_],
    progress: Progress,
    backend: Backend,
) -> OutOfFold:
    """The out-of-fold probabilities of ``config``: a model made of others (``ensemble``,
    ``table_ensemble``, ``tfidf_encoder``) is its registry entry's ``combine`` of its members'
    own runs; an encoder model's folds train on the items' cached embeddings."""
    config = _trained_as(config, backend)

    def members(specs: list[ModelSpec], role: str) -> list[OutOfFold]:
        parts = []
        for member in specs:
            member_config = _resolve(spec, data, member)
            progress(f"{spec.name}: {role} member {member_config.name}")
            parts.append(
                _out_of_fold(
                    spec, data, data_key, member_config, member, cache, content, progress, backend
                )
            )
        return parts

    entry = config.entry
    if entry is not None and entry.members:
        specs: dict[str, ModelSpec] = entry.call("members")(model)
        parts = members(list(specs.values()), config.name)
        combined: OutOfFold = entry.call("combine")(parts, data.labels, tuple(specs))
        if combined.blend is not None:
            progress(f"{spec.name}: {config.name} chose {combined.blend.chosen}")
        return combined
    embedded: EmbeddingUse | None = None
    if config.uses_encoder:
        data, embedded = _embedded(spec, data, config, cache, content, progress)
    run_key, lineage_key = _run_keys(spec, data_key, config)
    oof = out_of_fold(
        data,
        config,
        content=content,
        folds=spec.cv.folds,
        seed=spec.cv.seed,
        jobs=spec.cv.jobs,
        cache=cache,
        run_key=run_key,
        lineage_key=lineage_key,
        progress=progress,
        backend=backend,
    )
    if embedded is None:
        return oof
    return dataclasses.replace(oof, embeddings=embedded, vectors=data.features)


def _embedded(
    spec: DatasetSpec,
    data: Dataset,
    config: ModelConfig,
    cache: ArrayCache,
    content: npt.NDArray[np.str_],
    progress: Progress,
) -> tuple[Dataset, EmbeddingUse]:
    """``data`` with each item's embedding as its features (a table of floats), and what the
    embedding cost: items encoded, items whose vectors came from the cache, seconds."""
    encoder = _encoder(spec, data, config)
    items: Any = data.features
    if _reads_files(encoder, data):
        from pytest_labelquality.formats.images import FileImages

        assert encoder.resolution is not None
        items = FileImages(data.files, encoder.resolution)
    found = embed(
        items,
        content,
        encoder,
        identity=config.encoder_identity,
        cache=cache,
        dataset=f"{spec.spec_path.name}:{spec.name}",
        progress=progress,
    )
    if found.encoded:
        progress(f"{spec.name}: encoded {found.encoded} items in {found.seconds:.1f}s")
    table = dataclasses.replace(
        data, features=found.vectors, kind=DataKind.TABULAR, image_shape=None, categories=()
    )
    return table, EmbeddingUse(found.encoded, found.reused, round(found.seconds, 3))


def _kind(data: Dataset) -> ModelKind:
    if data.kind is DataKind.TEXT:
        return "text"
    return "image" if data.kind is DataKind.IMAGE else "table"


def _choose_model(
    spec: DatasetSpec,
    data: Dataset,
    data_key: str,
    cache: ArrayCache,
    content: Callable[[], npt.NDArray[np.str_]],
    progress: Progress,
) -> AutoChoice:
    """``model: auto``'s choice for this dataset, from the cache or by :func:`auto.choose`."""
    kind: ModelKind = _kind(data)
    grey = kind == "image" and data.features.ndim == 3
    # encoders are tried on colour photos and texts: on grey drawings they cost minutes to
    # encode and the drawings' defaults measure as well (docs/models.md, "Pretrained encoders")
    tried = candidates(kind, lambda e: extras_installed(e, kind) and not (grey and e.embeds))
    key = cache_keys.auto_key(
        data_key,
        [e.name for e in tried],
        spec.model,
        {
            name: version
            for e in tried
            for name, version in _resolve_only(spec, data, candidate_spec(spec.model, e))
            .versions()
            .items()
        },
        folds=spec.cv.folds,
        seed=spec.cv.seed,
    )
    entry = cache.load(key)
    if entry is not None:
        try:
            cached = AutoChoice.from_json(from_array(entry["choice"]))
        except (ValueError, KeyError, TypeError):
            cache.discard(key, "holding unreadable metadata")
        else:
            progress(f"{spec.name}: model auto chose {cached.chosen} (cached)")
            return cached

    def first(candidate: ModelSpec) -> Any:
        config = _trained_as(_resolve(spec, data, candidate), LOCAL)  # first folds train here
        progress(f"{spec.name}: model auto tries {config.name} on the first fold")
        fold_data = data
        if config.uses_encoder:
            fold_data, _ = _embedded(spec, data, config, cache, content(), progress)
        return first_fold(
            fold_data,
            config,
            content=content(),
            folds=spec.cv.folds,
            seed=spec.cv.seed,
            cache=cache,
            run_key=_run_keys(spec, data_key, config)[0],
            progress=progress,
        )

    chosen = choose(tried, spec.model, data.labels, first)
    figures = ", ".join(f"{n} {f.accuracy:.3f}" for n, f in chosen.candidates.items())
    progress(f"{spec.name}: model auto chose {chosen.chosen} (first-fold accuracy {figures})")
    cache.save(key, {"choice": as_array(chosen.to_json())})
    return chosen


@dataclass(frozen=True)
class Judgement:
    """The gate's verdict with what reviews and the baseline contributed to it."""

    verdict: Verdict
    hashes: dict[str, str]
    reviews: ReviewOutcome
    change: Change | None
    warnings: list[Notice]
    baseline_entry: dict[str, Any] | None
    keys: dict[str, tuple[str, str]]
    trust: Trust | None
    issues: DataIssues | None


def _judge(
    spec: DatasetSpec,
    data: Dataset,
    found: Detection,
    keys: dict[str, tuple[str, str]] | None,
    *,
    keep_items: bool,
    trusted_ref: str | None,
    baseline_dir: Path | None,
    decisions_ref: str | None,
    root: Path | None,
    issues: IssueSearch | None,
) -> Judgement:
    """Apply reviews (accepted items stop counting), compare with the baseline, decide.

    Items are hashed only where needed: all of them for a baseline, else the flagged and the
    reviewed ones. With ``trusted_ref`` the baseline and reviews are those of that commit, and
    edits to them in the working tree are reported, not used; with ``baseline_dir`` the
    baseline is that store's, and a committed one is not read."""
    import numpy as np

    ids = data.ids
    entries = load_reviews(spec.spec_path, spec.name, trusted_ref)
    decided = (
        load_decisions(spec.spec_path, spec.name, decisions_ref, root) if decisions_ref else []
    )
    baseline = load_baseline(spec.spec_path, trusted_ref, store=baseline_dir, root=root)
    trust = None
    if trusted_ref is not None:
        committed = [] if baseline_dir else [baseline_path(spec.spec_path)]
        edited = tuple(
            relative_path(path, root)
            for path in (*committed, reviews_path(spec.spec_path))
            if read_trusted(path, trusted_ref)[1]
        )
        trust = Trust(trusted_ref, edited)
    if keys is None and (keep_items or (baseline and spec.name in baseline["datasets"])):
        keys = item_keys(data)
    if keys is None:
        reviewed = np.flatnonzero(np.isin(ids, [r.id for r in [*entries, *decided]]))
        keys = item_keys(data, sorted({*found.flagged.tolist(), *reviewed.tolist()}))
    hashes = {i: review_hash(content, label) for i, (content, label) in keys.items()}
    reviews = apply_reviews(entries, keys, decided)
    counted = np.array(
        [i for i in found.flagged.tolist() if str(ids[i]) not in reviews.accepted], dtype=np.int64
    )
    suspects = [str(ids[i]) for i in counted]
    flagged_ids = [str(ids[i]) for i in found.flagged.tolist()]
    change = compare(baseline, spec.name, keys, flagged_ids, reviews.accepted)
    warnings = [Notice(WarningCode.STALE_REVIEW, text) for text in reviews.stale_warnings()]
    warnings += [Notice(WarningCode.PENDING_FIX, text) for text in reviews.pending_warnings()]
    if trust and trust.edited:
        warnings.append(
            Notice(
                WarningCode.TRUSTED_EDITS,
                f"this change edits {', '.join(trust.edited)}: the gate judged against the"
                f" version of {trusted_ref}; the edits take effect after merge",
            )
        )
    gate = spec.gate
    change_rules = [r for r in Rule if r.about_change]  # each is the GateSpec field of its name
    judging = [r for r in change_rules if r.about_labels or spec.checks.enabled]
    if change is None and any(getattr(gate, r) is not None for r in judging) and not keep_items:
        warnings.append(
            Notice(
                WarningCode.NO_BASELINE,
                f"the gate's rules on what a change did ({', '.join(change_rules)}) need a"
                " baseline and there is none for this dataset; write one with"
                " --label-quality-update-baseline",
            )
        )
    found_issues = (
        issue_result(data, issues, reviews.decisions, change.changed if change else None)
        if issues
        else None
    )
    verdict = decide(
        data.labels,
        counted,
        data.class_names,
        gate,
        origin=f"{relative_path(spec.spec_path, root)}:{spec.line}",
        change=change,
        issues=issue_counts(found_issues, len(data)) if found_issues else None,
    )
    entry = None
    if keep_items:
        entry = baseline_entry(verdict.noise_rate, verdict.noise_count, keys, suspects)
    return Judgement(verdict, hashes, reviews, change, warnings, entry, keys, trust, found_issues)


def _result(
    spec: DatasetSpec,
    data: Dataset,
    found: Detection,
    judged: Judgement,
    *,
    show_top: int,
    backend: str,
    model: ModelUse,
    versions: dict[str, str],
    cache: CacheUse,
    timings: Timings,
    root: Path | None,
) -> DatasetResult:
    import numpy as np

    verdict = judged.verdict
    names = data.class_names
    labels = data.labels
    warnings = _weak_model_warning(labels, found, len(names)) + judged.warnings
    source = Source.from_json({"origin": data.origin, "kind": data.kind.value, **data.stats})
    skipped = source.skipped or ()
    if skipped:
        listed = "; ".join(f"{s.path} ({s.reason})" for s in skipped[:20])
        warnings.append(
            Notice(
                WarningCode.UNREADABLE_SKIPPED,
                f"{len(skipped)} unreadable file(s) skipped (source.skip_unreadable): {listed}",
            )
        )
    flagged = found.flagged
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (labels[flagged], found.suggested[flagged]), 1)
    counts, edges = np.histogram(found.scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    ranks = np.empty(len(labels), dtype=np.int64)  # 1 = lowest score of all items
    ranks[np.argsort(found.scores, kind="stable")] = np.arange(1, len(labels) + 1)
    shown = previews(data, flagged)
    suspects = []
    for k, i in enumerate(flagged.tolist()):
        item = str(data.ids[i])
        suspects.append(
            Suspect(
                rank=int(ranks[i]),
                index=int(i),
                id=item,
                hash=judged.hashes[item],
                content_hash=judged.keys[item][0],
                review=judged.reviews.decisions.get(item),
                given=names[labels[i]],
                given_prob=round(float(found.given_prob[i]), 4),
                suggested=names[found.suggested[i]],
                suggested_prob=round(float(found.suggested_prob[i]), 4),
                score=round(float(found.scores[i]), 6),
                preview=shown[k] if k < len(shown) else None,
                location=data.location(i),
                **_neighbours_of(data, found, i),
            )
        )
    below = _below_estimate(data, found, show_top)
    estimates = found.estimates
    gate = spec.gate
    return DatasetResult(
        name=spec.name,
        spec=SpecRef(relative_path(spec.spec_path, root), spec.line),
        source=source,
        items=len(data),
        classes=tuple(names),
        feature_names=tuple(data.feature_names),
        noise=Noise(
            rate=verdict.noise_rate,
            count=verdict.noise_count,
            flagged=len(flagged),
            reviewed=len(flagged) - verdict.noise_count,
            interval=found.noise_rate_interval,
            method=DetectionMethod.from_json(found.method),
            estimators={n: Estimator(c, c / len(data)) for n, c in estimates.items()},
            band=(min(estimates.values()) / len(data), max(estimates.values()) / len(data)),
            canary=Canary(**found.canary),
        ),
        gate=Gate(
            max_noise_rate=verdict.max_noise_rate,
            max_class_noise_rate=dict(gate.max_class_noise_rate),
            max_increase=gate.max_increase,
            max_new_suspects=gate.max_new_suspects,
            max_new_suspect_share=gate.max_new_suspect_share,
            change_failures=tuple(verdict.change_failures),
            failed_rules=tuple(
                RuleFailure(f.rule, f.value, f.limit, f.class_name, f.message)
                for f in verdict.failed_rules
            ),
            passed=verdict.passed,
        ),
        trust=judged.trust,
        reviews=Reviews(
            decisions=dict(judged.reviews.decisions),
            stale=tuple(r.id for r in judged.reviews.stale),
            pending=tuple(r.id for r in judged.reviews.pending),
        ),
        baseline=_change(judged.change, verdict.noise_rate) if judged.change else None,
        per_class=tuple(
            ClassRow(c.name, c.items, c.flagged, c.rate, c.max_rate, c.passed)
            for c in verdict.classes
        ),
        oof_accuracy=float(np.mean(found.suggested == labels)),
        flagged=tuple(suspects),
        noise_matrix=tuple(tuple(row) for row in matrix.tolist()),
        score_histogram=Histogram(
            edges=tuple(round(float(e), 4) for e in edges),
            counts=tuple(counts.tolist()),
            cutoff=float(found.scores[flagged].max()) if len(flagged) else None,
        ),
        cv=CrossValidation(spec.cv.folds, spec.cv.seed, spec.cv.jobs),
        warnings=tuple(warnings),
        backend=backend,
        model=model,
        versions=versions,
        cache=cache,
        timings=timings,
        ranking=ranking(data, found),
        below_estimate=below,
        exemplars=(
            _exemplars(data, found)
            if found.neighbours is None
            and (data.kind is DataKind.IMAGE or data.image_shape is not None)
            else None
        ),
        neighbour_previews=(
            _neighbour_previews(data, [*(s for s in suspects if not s.accepted), *below])
            if found.neighbours is not None
            else None
        ),
        baseline_entry=judged.baseline_entry,
        injected=_against_injected(flagged, data.flipped) if len(data.flipped) else None,
        issues=judged.issues,
    )


def _change(change: Change, noise_rate: float) -> ChangeSummary:
    return ChangeSummary(
        baseline_commit=change.baseline_commit,
        baseline_noise_rate=change.baseline_rate,
        noise_rate_change=noise_rate - change.baseline_rate,
        changed_items=len(change.changed),
        new_suspects=tuple(change.new_suspects),
        changed_suspects=tuple(change.new_suspects),
        unchanged_new_suspects=tuple(change.unchanged_new_suspects),
        resolved_suspects=tuple(change.resolved_suspects),
        accepted_by_review=tuple(change.accepted_by_review),
        still_suspect=len(change.still_suspect),
    )


def _exemplars(data: Dataset, found: Detection) -> dict[str, tuple[Exemplar, ...]]:
    """For images: per class, the few items the model most confidently agrees are of it, to set
    beside a suspect's given and suggested class (the first :data:`EXEMPLAR_CLASSES` classes)."""
    import numpy as np

    out: dict[str, tuple[Exemplar, ...]] = {}
    agreed = found.suggested == data.labels
    for k, name in enumerate(data.class_names[:EXEMPLAR_CLASSES]):
        members = np.flatnonzero(agreed & (data.labels == k))
        best = members[np.argsort(-found.given_prob[members], kind="stable")[:EXEMPLARS]]
        out[name] = tuple(
            Exemplar(str(data.ids[i]), round(float(found.given_prob[i]), 4), preview(data, i))
            for i in best.tolist()
        )
    return out


def _neighbours_of(data: Dataset, found: Detection, i: int) -> dict[str, Any]:
    """Item ``i``'s neighbours as :class:`Suspect` fields (none where the run had no
    embeddings)."""
    if found.neighbours is None:
        return {}
    names = data.class_names
    of_suggested, of_given = found.neighbours.of(i)

    def listed(pairs: list[tuple[int, float]], k: int) -> tuple[Neighbour, ...]:
        return tuple(
            Neighbour(j, str(data.ids[j]), names[k], round(similarity, 4))
            for j, similarity in pairs
        )

    return {
        "suggested_neighbours": listed(of_suggested, int(found.suggested[i])),
        "given_neighbours": listed(of_given, int(data.labels[i])),
    }


def _neighbour_previews(data: Dataset, suspects: list[Suspect]) -> dict[str, Preview]:
    """Brief previews of the suspects' neighbours by id, each once, most suspect first, up to
    :data:`NEIGHBOUR_PREVIEWS` items."""
    out: dict[str, Preview] = {}
    for suspect in suspects:
        for near in (*(suspect.suggested_neighbours or ()), *(suspect.given_neighbours or ())):
            if near.id in out:
                continue
            if len(out) >= NEIGHBOUR_PREVIEWS:
                return out
            out[near.id] = preview(data, near.index, brief=True)
    return out


def honest_count_line(name: str, items: int, found: Detection) -> str:
    """One progress line: both estimators' counts (on probabilities scaled by which
    temperature) and what the canary recovered."""
    counts = ", ".join(f"{e} {c}" for e, c in found.estimates.items())
    line = f"{name}: count by {counts} of {items}"
    temperature = DetectionMethod.from_json(found.method).temperature
    if temperature is not None:
        line += f" (probabilities at temperature {temperature:.2f})"
    canary = found.canary
    if canary.get("injected"):
        line += (
            f"; canary: {canary['recovered']} of {canary['injected']} injected flips found, the"
            f" count rose by {canary['count_rise']}"
        )
    return line


def ranking(data: Dataset, found: Detection) -> Ranking:
    """Every item, most suspect first: the columns of the ranking file."""
    import numpy as np

    order = np.argsort(found.scores, kind="stable")
    flagged = np.zeros(len(data), dtype=bool)
    flagged[found.flagged] = True
    names = np.asarray(data.class_names, dtype=object)
    return Ranking(
        rank=tuple(range(1, len(order) + 1)),
        index=tuple(order.tolist()),
        id=tuple(data.ids[order].tolist()),
        given=tuple(names[data.labels[order]].tolist()),
        suggested=tuple(names[found.suggested[order]].tolist()),
        suggested_prob=tuple(np.round(found.suggested_prob[order].astype(np.float64), 4).tolist()),
        score=tuple(np.round(found.scores[order], 6).tolist()),
        flagged=tuple(flagged[order].astype(int).tolist()),
    )


def _below_estimate(data: Dataset, found: Detection, top: int) -> tuple[Suspect, ...]:
    """The items among the ``top`` most suspect that the estimate does not flag, with previews."""
    import numpy as np

    order = np.argsort(found.scores, kind="stable")[:top]
    below = order[~np.isin(order, found.flagged)]
    names = data.class_names
    keys = item_keys(data, below.tolist())
    shown = previews(data, below)
    return tuple(
        Suspect(
            rank=int(np.flatnonzero(order == i)[0]) + 1,
            index=int(i),
            id=str(data.ids[i]),
            hash=review_hash(*keys[str(data.ids[i])]),
            given=names[data.labels[i]],
            suggested=names[found.suggested[i]],
            suggested_prob=round(float(found.suggested_prob[i]), 4),
            score=round(float(found.scores[i]), 6),
            below_estimate=True,
            preview=shown[k] if k < len(shown) else None,
            location=data.location(int(i)),
            **_neighbours_of(data, found, int(i)),
        )
        for k, i in enumerate(below.tolist())
    )


def _weak_model_warning(
    labels: npt.NDArray[np.int64], found: Detection, num_classes: int
) -> list[Notice]:
    """Warn when the model's out-of-fold predictions are too weak for its estimate to be
    trusted: confident learning trusts the model's probabilities, and a model with little skill
    flags its own mistakes, not wrong labels. Three signs, each enough:

    - its skill is low: balanced accuracy (the mean of per-class recalls, against the given
      labels) rescaled so that chance, 1/K, is 0 and perfect is 1. Balanced, because always
      answering the most common class scores high accuracy on imbalanced data, and noisy labels
      cap any model's accuracy at about one minus the noise rate;
    - it disagrees with many of the labels it accepts (more than
      :data:`MAX_ACCEPTED_DISAGREEMENT`), and either with more of them than the share it flags
      or with a canary count that rises faster than the flips put in (:data:`MAX_CANARY_RISE`),
      or with more than :data:`MAX_ACCEPTED_DISAGREEMENT_ALONE` of them:
      rescaling by chance lets a 10-class model at 45% through, yet one wrong on a fifth of
      the items it calls correctly labelled makes confident mistakes too, and they are counted
      as wrong labels.
    """
    import numpy as np

    suggested = found.suggested
    present = np.bincount(labels, minlength=num_classes) > 0
    hits = np.bincount(labels[suggested == labels], minlength=num_classes)
    recalls = hits[present] / np.bincount(labels, minlength=num_classes)[present]
    balanced = float(recalls.mean())
    chance = 1 / int(present.sum())
    skill = (balanced - chance) / (1 - chance)
    accepted = np.ones(len(labels), dtype=bool)
    accepted[found.flagged] = False
    disagreement = float((suggested[accepted] != labels[accepted]).mean()) if accepted.any() else 0
    canary = found.canary
    injected = int(canary.get("injected") or 0)
    rise = int(canary.get("count_rise") or 0)
    reasons = []
    if skill < WEAK_MODEL_SKILL:
        reasons.append(
            f"out-of-fold balanced accuracy {balanced:.1%} against {chance:.1%} by chance (skill"
            f" {skill:.2f} < {WEAK_MODEL_SKILL})"
        )
    flagged_share = len(found.flagged) / len(labels)
    rises = injected >= CANARY_MIN and rise > MAX_CANARY_RISE * injected
    alone = disagreement > MAX_ACCEPTED_DISAGREEMENT_ALONE
    if disagreement > MAX_ACCEPTED_DISAGREEMENT and (
        disagreement > flagged_share or rises or alone
    ):
        than = (
            f"more than the {flagged_share:.1%} it flags"
            if disagreement > flagged_share
            else f"and {injected} labels flipped on purpose raised its count by {rise}"
            if rises
            else f"more than {MAX_ACCEPTED_DISAGREEMENT_ALONE:.0%} of them"
        )
        reasons.append(
            f"it disagrees with {disagreement:.1%} of the labels it accepts, {than}, so many"
            " suspects may be its own mistakes"
        )
    if not reasons:
        return []
    return [
        Notice(
            WarningCode.WEAK_MODEL,
            f"the model is too weak for the estimate to be trusted: {'; '.join(reasons)}; try a"
            " stronger model or more epochs before fixing labels",
        )
    ]


def _against_injected(flagged: npt.NDArray[np.int64], flipped: npt.NDArray[np.int64]) -> Injected:
    """Precision, recall and F1 of the flagged items against the injected flips."""
    hits = len(set(flagged.tolist()) & set(flipped.tolist()))
    precision = hits / len(flagged) if len(flagged) else 0.0
    recall = hits / len(flipped) if len(flipped) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return Injected(len(flipped), hits, precision, recall, f1, tuple(flipped.tolist()))
