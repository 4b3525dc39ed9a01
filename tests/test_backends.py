"""Folds on a real local Ray cluster and a real Dask LocalCluster (2 workers each, started once
per session): the same estimate and flagged items as the local backend, a worker killed in the
middle of a fold retried, one-line errors for a missing extra and a bad address."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import bars
from sklearn.datasets import load_digits  # here, not in a pytester test that drops modules

from pytest_labelquality.backends import (
    Backend,
    BackendName,
    close_engines,
    dask_engine,
    missing_extra,
)
from pytest_labelquality.backends.tasks import check_reachable, greeting_timeout
from pytest_labelquality.cache import ArrayCache
from pytest_labelquality.errors import BackendError, CacheError
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec

#: A factory whose model's first fit kills its process, leaving a marker file that keeps the
#: later ones alive: the engine must run the fold again on a worker that lives.
FLAKY_FACTORY = """\
import os
from pathlib import Path

from sklearn.linear_model import LogisticRegression


class DiesOnce(LogisticRegression):
    def __init__(self, marker="", max_iter=2000):
        super().__init__(max_iter=max_iter)
        self.marker = marker

    def fit(self, x, y):
        if not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().fit(x, y)


def model(marker):
    return DiesOnce(marker)
"""


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray cluster of 2 CPUs, for the whole session, its logs and sockets in the
    session's temporary folder (not ``/tmp/ray``); its address."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        # on loopback, without the token Ray would write to ~/.ray for its clients to read
        patch.setenv("RAY_AUTH_MODE", "disabled")
        context = ray.init(
            num_cpus=2,
            object_store_memory=80 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _temp_dir=str(tmp_path_factory.mktemp("ray")),
        )
        yield str(context.address_info["gcs_address"])
        ray.shutdown()


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[str]:
    """An S3 bucket on a moto server on loopback, for the whole session; the AWS variables
    that lead s3fs to it are set for this process and the workers it starts."""
    server_module = pytest.importorskip("moto.server")
    fsspec = pytest.importorskip("fsspec")
    pytest.importorskip("s3fs")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("label-quality")
        yield "label-quality"
    server.stop()


@pytest.fixture(scope="session")
def dask_address(s3_bucket: str) -> Iterator[str]:
    """A Dask LocalCluster of 2 single-threaded worker processes, for the whole session (its
    workers reach the S3 bucket)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=50,
    )
    yield str(cluster.scheduler_address)
    close_engines()
    cluster.close()


@pytest.fixture(params=[BackendName.RAY, BackendName.DASK], ids=["ray", "dask"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: BackendName = request.param
    fixture = "ray_address" if name is BackendName.RAY else "dask_address"
    return Backend(name, request.getfixturevalue(fixture))


def write_digits(folder: Path, model: str, *, count: int = 600) -> Path:
    """A spec of 3 folds with ``model`` on ``count`` of sklearn's digits, or on 300 bar images
    for the image models; about 10% of the labels are wrong, each item's flip drawn from its
    own row of random numbers (a grown dataset keeps the first items' labels)."""
    if "hog_boosting" in model or "cnn" in model:
        x, y = bars(300)
    else:
        x, y = load_digits(return_X_y=True)
        x, y = x[:count], y[:count]
    classes = int(y.max()) + 1
    draws = np.random.default_rng(1).random((len(y), 2))
    shift = np.where(draws[:, 0] < 0.1, 1 + (draws[:, 1] * (classes - 1)).astype(int), 0)
    np.savez(folder / "digits.npz", x=x, y=(y + shift) % classes)
    path = folder / "digits.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: digits\n"
        "    source: {format: npz, path: digits.npz}\n"
        f"    model: {model}\n"
        "    cv: {folds: 3, seed: 3}\n"
        "    gate: {max_noise_rate: 0.3}\n"
    )
    return path


def answer(result: dict[str, Any]) -> tuple[Any, ...]:
    """What must not depend on where folds trained."""
    return (
        result["noise"]["count"],
        result["noise"]["rate"],
        result["noise"]["estimators"],
        [entry["id"] for entry in result["flagged"]],
    )


LOCAL_ANSWERS: dict[str, tuple[Any, ...]] = {}


def local_answer(folder: Path, model: str) -> tuple[Any, ...]:
    """The local backend's answer for ``model`` on the digits, computed once per session."""
    if model not in LOCAL_ANSWERS:
        (spec,) = load_spec(write_digits(folder, f"{{name: {model}}}"))
        result = check_dataset(
            spec, cache_dir=folder / "local-cache", progress=lambda _: None
        ).to_json()
        assert result["backend"] == "local"
        LOCAL_ANSWERS[model] = answer(result)
    return LOCAL_ANSWERS[model]


@pytest.mark.parametrize("model", ["logistic_regression", "hog_boosting"])
def test_an_engine_gives_the_local_answer(
    backend: Backend, model: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    expected = local_answer(tmp_path_factory.mktemp("local"), model)
    (spec,) = load_spec(write_digits(tmp_path, f"{{name: {model}}}"))
    lines: list[str] = []
    cache = tmp_path / "cache"
    result = check_dataset(spec, cache_dir=cache, progress=lines.append, backend=backend).to_json()
    assert result["backend"] == backend.name.value
    assert answer(result) == expected
    assert result["cache"]["status"] == "miss"
    assert f"3 folds of {model} sent to {backend.name.value}" in lines
    assert sum(line.startswith("fold ") for line in lines) == 3
    assert len(list(cache.rglob("*.joblib"))) == 3  # each task saved its fold's model
    # the entries the workers wrote are the next run's cache, wherever that one trains
    for entry in cache.rglob("*.npz"):
        fold = np.load(entry)
        if "probs" not in fold.files:  # the detection: the folds are what is being checked
            entry.unlink()
    again: list[str] = []
    warm = check_dataset(spec, cache_dir=cache, progress=again.append).to_json()
    assert "3 of 3 folds from the cache" in again
    assert answer(warm) == expected


def test_keras_folds_on_ray_give_the_local_answer(ray_address: str, tmp_path: Path) -> None:
    """Keras folds too: each task saves its ``.keras`` model beside its entry."""
    model = "{name: small_cnn, epochs: 2}"
    (spec,) = load_spec(write_digits(tmp_path, model))
    backend = Backend(BackendName.RAY, ray_address)
    result = check_dataset(
        spec, cache_dir=tmp_path / "ray", progress=lambda _: None, backend=backend
    ).to_json()
    local = check_dataset(spec, cache_dir=tmp_path / "local", progress=lambda _: None).to_json()
    assert len(list((tmp_path / "ray").rglob("*.keras"))) == 3
    assert answer(result) == answer(local)


def test_folds_already_cached_are_not_submitted(tmp_path: Path, dask_address: str) -> None:
    (spec,) = load_spec(write_digits(tmp_path, "{name: logistic_regression}"))
    cache = tmp_path / "cache"
    first = check_dataset(spec, cache_dir=cache, progress=lambda _: None).to_json()
    folds = [entry for entry in cache.rglob("*.npz") if "probs" in np.load(entry).files]
    assert len(folds) == 3
    for entry in cache.rglob("*.npz"):  # one fold and the detection gone, two folds kept
        if entry not in folds[1:]:
            entry.unlink()
    lines: list[str] = []
    backend = Backend(BackendName.DASK, dask_address)
    again = check_dataset(spec, cache_dir=cache, progress=lines.append, backend=backend).to_json()
    assert answer(again) == answer(first)
    assert "2 of 3 folds from the cache" in lines
    assert [line for line in lines if "sent to" in line] == [
        "1 fold of logistic_regression sent to dask"
    ]


def test_a_worker_killed_in_a_fold_is_retried(backend: Backend, tmp_path: Path) -> None:
    """The factory's first fit on each cluster kills its worker process (``os._exit``); the
    engine runs that fold again on a live worker and the answer is the local one."""
    (tmp_path / "flaky.py").write_text(FLAKY_FACTORY)
    marker = tmp_path / "died"
    model = f"{{factory: 'flaky:model', params: {{marker: '{marker}'}}}}"
    (spec,) = load_spec(write_digits(tmp_path, model))
    result = check_dataset(
        spec, cache_dir=tmp_path / "cache", progress=lambda _: None, backend=backend
    ).to_json()
    assert marker.exists(), "no worker died: the test would prove nothing"
    assert int(marker.read_text()) != os.getpid()
    local = check_dataset(spec, cache_dir=tmp_path / "local", progress=lambda _: None).to_json()
    assert answer(result) == answer(local)


def test_dask_scatters_again_when_the_only_copy_of_the_data_dies(tmp_path: Path) -> None:
    """On a one-worker cluster the worker that dies holds the only copy of the scattered
    data, which the scheduler cannot recompute: the data is scattered again, once."""
    distributed = pytest.importorskip("distributed")
    (tmp_path / "flaky.py").write_text(FLAKY_FACTORY)
    marker = tmp_path / "died"
    model = f"{{factory: 'flaky:model', params: {{marker: '{marker}'}}}}"
    (spec,) = load_spec(write_digits(tmp_path, model))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    ) as cluster:
        backend = Backend(BackendName.DASK, cluster.scheduler_address)
        result = check_dataset(
            spec, cache_dir=tmp_path / "cache", progress=lambda _: None, backend=backend
        ).to_json()
        client = dask_engine.connect(cluster.scheduler_address)
        close_engines()  # as the plugin does when a run ends, before its cluster goes
        assert client.status == "closed"
    assert marker.exists()
    local = check_dataset(spec, cache_dir=tmp_path / "local", progress=lambda _: None).to_json()
    assert answer(result) == answer(local)


def test_a_bad_address_is_one_line() -> None:
    with pytest.raises(BackendError) as raised:
        check_reachable("Dask", "tcp://127.0.0.1:9")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("cannot reach the Dask cluster at tcp://127.0.0.1:9: ")
    assert "--label-quality-backend-address" in message


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback address that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_scheduler_that_accepts_and_never_answers_is_one_line_not_a_hang(
    pytester: pytest.Pytester, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_digits(pytester.path, "{name: logistic_regression}")
    monkeypatch.setenv("LABEL_QUALITY_BACKEND_TIMEOUT", "1")
    run = pytester.runpytest_subprocess(
        "--label-quality", "-p", "no:cacheprovider", "--label-quality-backend=dask",
        f"--label-quality-backend-address={silent_server}", timeout=120,
    )  # fmt: skip
    run.assert_outcomes(failed=1)
    line = (
        f"the Dask scheduler at {silent_server} accepted the connection but did not answer"
        " within 1 s; check that it is a Dask scheduler and not stuck"
    )
    assert [x for x in run.stdout.lines if line in x], run.stdout.str()
    assert "Traceback" not in run.stdout.str()


def test_a_cache_url_whose_endpoint_never_answers_is_one_error_not_a_hang(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3fs = pytest.importorskip("s3fs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_server.replace("tcp://", "http://"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("LABEL_QUALITY_CACHE_TIMEOUT", "1")
    s3fs.S3FileSystem.clear_instance_cache()  # none made for the moto endpoint may answer
    try:
        with pytest.raises(CacheError) as raised:
            ArrayCache("s3://silent-bucket/label-quality").check_usable()
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    message = str(raised.value)
    assert message == (
        "the cache at s3://silent-bucket/label-quality did not answer within 1 s (pipe_file);"
        " check its endpoint and network, or raise $LABEL_QUALITY_CACHE_TIMEOUT"
    )


def test_a_bad_backend_timeout_is_named() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABEL_QUALITY_BACKEND_TIMEOUT", "soon")
        with pytest.raises(BackendError, match=r"LABEL_QUALITY_BACKEND_TIMEOUT must be a number"):
            greeting_timeout()
        patch.setenv("LABEL_QUALITY_BACKEND_TIMEOUT", "0")
        with pytest.raises(BackendError, match=r"must be above 0"):
            greeting_timeout()


REPORT = "label-quality-report/label-quality.json"


def test_the_plugin_sends_folds_to_an_engine(
    pytester: pytest.Pytester, dask_address: str, ray_address: str
) -> None:
    """Chosen by the option (Dask) and by the environment (Ray, whose address comes from
    $RAY_ADDRESS); a bad address fails the dataset in one line."""
    (spec,) = load_spec(write_digits(pytester.path, "{name: logistic_regression}"))
    local = check_dataset(
        spec, cache_dir=pytester.path / "local", progress=lambda _: None
    ).to_json()
    quiet = ["--label-quality", "-p", "no:cacheprovider"]
    dask = ["--label-quality-backend=dask", f"--label-quality-backend-address={dask_address}"]
    for name, options, env in (
        ("dask", dask, {}),
        ("ray", [], {"LABEL_QUALITY_BACKEND": "ray", "RAY_ADDRESS": ray_address}),
    ):
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            run = pytester.runpytest_subprocess(
                *quiet, f"--label-quality-cache-dir={name}", *options
            )
        run.assert_outcomes(passed=1)
        run.stdout.fnmatch_lines([f"*3 folds of logistic_regression sent to {name}*"])
        (remote,) = json.loads((pytester.path / REPORT).read_text())["datasets"]
        assert remote["backend"] == name
        assert [f["id"] for f in remote["flagged"]] == [f["id"] for f in local["flagged"]]
        assert remote["noise"]["count"] == local["noise"]["count"]
    address = ["--label-quality-backend=ray", "--label-quality-backend-address=127.0.0.1:9"]
    bad = pytester.runpytest_subprocess(*quiet, "--label-quality-cache-dir=bad", *address)
    bad.assert_outcomes(failed=1)
    line = (
        "digits.labelquality.yaml:2: dataset 'digits': cannot reach the Ray cluster at"
        " 127.0.0.1:9: Connection refused; start it, or point --label-quality-backend-address"
        " (or the engine's address variable) at it"
    )
    assert [x for x in bad.stdout.lines if x.endswith(line)], bad.stdout.str()
    assert "Traceback" not in bad.stdout.str()


BLOCK = """\
import importlib.abc, sys

class NoEngines(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("ray", "dask", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoEngines())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("name", ["ray", "dask"])
def test_a_missing_engine_is_one_line_naming_the_extra(
    pytester: pytest.Pytester, name: str
) -> None:
    write_digits(pytester.path, "{name: logistic_regression}")
    run = pytester.run(
        sys.executable, "-c", BLOCK, "--label-quality", f"--label-quality-backend={name}"
    )
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    modules = "ray" if name == "ray" else "dask and distributed"
    run.stderr.fnmatch_lines(
        [
            f"ERROR: the {name} backend needs {modules}, which is not installed: install the"
            f" {name} extra, pip install 'pytest-labelquality[{name}]'"
        ]
    )
    assert missing_extra(BackendName(name)) == ""  # here, where the extra is installed


def s3_objects(bucket: str, prefix: str) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    return [str(name) for name in fs.find(f"{bucket}/{prefix}")]


def test_a_cache_in_an_object_store_is_atomic_and_checked(s3_bucket: str) -> None:
    """Entries go through a temporary key; a garbled or truncated object is recomputed."""
    url = f"s3://{s3_bucket}/unit"
    repaired: list[str] = []
    cache = ArrayCache(url, on_repair=repaired.append)
    cache.check_usable()
    cache.save("ab12", {"x": np.arange(5)})
    assert s3_objects(s3_bucket, "unit") == [f"{s3_bucket}/unit/ab/ab12.npz"]  # no temporary
    loaded = cache.load("ab12", {"x": ("i", (5,))})
    assert loaded is not None
    assert loaded["x"].tolist() == [0, 1, 2, 3, 4]
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    whole = fs.cat_file(f"{s3_bucket}/unit/ab/ab12.npz")
    for broken in (whole[: len(whole) // 2], b"garbage"):
        fs.pipe_file(f"{s3_bucket}/unit/ab/ab12.npz", broken)
        assert cache.load("ab12") is None
        assert s3_objects(s3_bucket, "unit") == []
    assert len(repaired) == 2
    assert repaired[0].startswith(f"cache entry {url}/ab/ab12.npz was unreadable")


def test_workers_share_a_cache_in_an_object_store(
    s3_bucket: str, dask_address: str, tmp_path: Path
) -> None:
    """Dask's workers write each fold's entry and model to S3; a later run on this machine
    scores new items with those models (the incremental path downloads them)."""
    (spec,) = load_spec(write_digits(tmp_path, "{name: logistic_regression}"))
    url = f"s3://{s3_bucket}/shared"
    backend = Backend(BackendName.DASK, dask_address)
    result = check_dataset(spec, cache_dir=url, progress=lambda _: None, backend=backend).to_json()
    local = check_dataset(spec, cache_dir=tmp_path / "local", progress=lambda _: None).to_json()
    assert answer(result) == answer(local)
    assert result["cache"]["dir"] == url
    objects = s3_objects(s3_bucket, "shared")
    assert sum(name.endswith(".joblib") for name in objects) == 3
    assert not [name for name in objects if "/.tmp-" in name]
    (grown,) = load_spec(write_digits(tmp_path, "{name: logistic_regression}", count=610))
    lines: list[str] = []
    again = check_dataset(grown, cache_dir=url, progress=lines.append).to_json()
    assert again["cache"]["status"] == "incremental", lines
    assert again["cache"]["incremental"]["scored"] == 10
    assert again["items"] == 610


PHOTOS_SPEC = """\
datasets:
  - name: photos
    source: {{format: images, dir: photos}}
    model: {{name: encoder_linear}}
    cv: {{folds: {folds}}}
    gate: {{max_noise_rate: 0.5}}
"""


def test_an_encoder_model_encodes_once_and_shares_its_embeddings_through_the_store(
    s3_bucket: str, dask_address: str, tmp_path: Path, photo_folders: Any
) -> None:
    """Photos under ``encoder_linear`` with folds on Dask and the cache in S3: each photo is
    encoded once, where the check runs (not once per fold nor per worker); the workers train
    the heads on the embeddings and give the local answer; a run of other folds on the same
    store encodes nothing."""
    pytest.importorskip("onnxruntime")
    photo_folders(tmp_path / "photos", per_class=16, moved=3)
    path = tmp_path / "photos.labelquality.yaml"
    path.write_text(PHOTOS_SPEC.format(folds=3))
    (spec,) = load_spec(path)
    url = f"s3://{s3_bucket}/encoded"
    lines: list[str] = []
    backend = Backend(BackendName.DASK, dask_address)
    result = check_dataset(spec, cache_dir=url, progress=lines.append, backend=backend).to_json()
    assert result["cache"]["embeddings"]["encoded"] == 48
    assert "3 folds of encoder_linear sent to dask" in lines
    assert sum("encoding" in line for line in lines) <= 1, lines
    local = check_dataset(spec, cache_dir=tmp_path / "local", progress=lambda _: None).to_json()
    assert answer(result) == answer(local)
    path.write_text(PHOTOS_SPEC.format(folds=4))
    (other,) = load_spec(path)
    again = check_dataset(other, cache_dir=url, progress=lambda _: None, backend=backend).to_json()
    assert again["cache"]["status"] == "miss"  # other folds: trained again
    assert again["cache"]["embeddings"]["encoded"] == 0
    assert again["cache"]["embeddings"]["reused"] == 48


BLOCK_FSSPEC = """\
import importlib.abc, sys

class NoFsspec(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "fsspec":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoFsspec())
from pytest_labelquality.cache import ArrayCache
from pytest_labelquality.errors import CacheError
try:
    ArrayCache("s3://bucket/prefix")
except CacheError as exc:
    print(exc)
"""


def test_a_cache_url_without_fsspec_is_one_line_naming_the_extra(
    pytester: pytest.Pytester,
) -> None:
    run = pytester.run(sys.executable, "-c", BLOCK_FSSPEC)
    assert run.stdout.lines == [
        "a cache URL needs fsspec (and the package of its protocol, e.g. s3fs), which is not"
        " installed: pip install 'pytest-labelquality[fsspec]' s3fs"
    ]


def test_a_bad_backend_name_is_a_usage_error(pytester: pytest.Pytester) -> None:
    run = pytester.runpytest_subprocess("--label-quality", "--label-quality-backend=spark")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(
        ["*--label-quality-backend: must be one of local, ray, dask, got 'spark'*"]
    )
    pytester.makeini("[pytest]\nlabel_quality_backend = spark\n")
    run = pytester.runpytest_subprocess("--label-quality")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(
        ["ERROR: ini label_quality_backend must be one of local, ray, dask, got 'spark'"]
    )
