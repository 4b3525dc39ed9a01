"""The plugin end to end, through pytest in a subprocess: items, verdicts, files, cache, imports."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

HEAVY = ("cleanlab", "sklearn", "tensorflow", "keras", "scipy", "pandas", "PIL", "pyarrow")

IMPORT_PROBE = """
import json, sys

def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    with open("imported.json", "w") as handle:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), handle)
"""


def write_iris(
    path: Path, *, flip_rows: tuple[int, ...] = (), relabel: dict[int, int] | None = None
) -> None:
    """Iris as an .npz with ids; optionally flip some labels to the next class."""
    x, y = load_iris(return_X_y=True)
    y = y.copy()
    for row in flip_rows:
        y[row] = (y[row] + 1) % 3
    for row, label in (relabel or {}).items():
        y[row] = label
    np.savez(path, x=x, y=y, ids=np.array([f"iris-{i}" for i in range(len(y))]))


SPEC = """\
datasets:
  - name: iris-clean
    source: {format: npz, path: iris.npz, ids: ids, classes: [setosa, versicolor, virginica]}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.08}

  - name: iris-noisy
    source: {format: npz, path: noisy.npz, ids: ids, classes: [setosa, versicolor, virginica]}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.08}
"""

NOISY_ROWS = tuple(range(0, 150, 7))  # 22 of 150 labels moved to the next class


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_iris(pytester.path / "iris.npz")
    write_iris(pytester.path / "noisy.npz", flip_rows=NOISY_ROWS)
    pytester.makefile(".labelquality.yaml", data=SPEC)
    pytester.makeconftest(IMPORT_PROBE)
    return pytester


def results(pytester: pytest.Pytester) -> dict[str, Any]:
    path = pytester.path / "label-quality-report" / "label-quality.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return {r["name"]: r for r in document["datasets"]}


def imported(pytester: pytest.Pytester) -> set[str]:
    return set(json.loads((pytester.path / "imported.json").read_text()))


def test_clean_passes_noisy_fails_with_a_paragraph_not_a_traceback(
    project: pytest.Pytester,
) -> None:
    run = project.runpytest_subprocess("--label-quality")
    run.assert_outcomes(passed=1, failed=1)
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    out = run.stdout.str()
    assert "Traceback" not in out
    run.stdout.fnmatch_lines(
        [
            "*label quality: iris-noisy*",
            "estimated label noise *% (* of 150, 95% interval *) exceeds max_noise_rate 8.0%"
            " for 'iris-noisy' (*data.labelquality.yaml:7). Most suspect: iris-*"
            "Review the suspects in *label-quality-report*label-quality.json*",
            "*= label quality =*",
            "dataset * items * classes * noise * max * verdict * cache * seconds",
            "iris-clean * 150 * 3 * PASS * miss *",
            "iris-noisy * 150 * 3 * FAIL * miss *",
            "label-quality results: *label-quality.json",
            "FAILED data.labelquality.yaml::iris-noisy - estimated label noise*",
        ]
    )
    run.stdout.fnmatch_lines(["*fold 5/5: trained on 120 items in *s; accuracy on its 30*"])
    found = results(project)
    noisy = found["iris-noisy"]
    assert noisy["gate"]["passed"] is False
    assert noisy["items"] == 150
    assert noisy["classes"] == ["setosa", "versicolor", "virginica"]
    assert noisy["noise"]["count"] == len(noisy["flagged"])
    assert noisy["noise"]["method"]["count"] == "off_diagonal_calibrated"
    assert noisy["spec"]["line"] == 7
    assert noisy["cv"] == {"folds": 5, "seed": 0, "jobs": 1}
    assert noisy["cache"]["status"] == "miss"
    assert set(noisy["versions"]) >= {"cleanlab", "scikit-learn", "numpy", "pytest-labelquality"}
    flagged_ids = {item["id"] for item in noisy["flagged"]}
    planted = {f"iris-{row}" for row in NOISY_ROWS}
    assert len(flagged_ids & planted) >= 0.7 * len(planted)
    assert [item["rank"] for item in noisy["flagged"]] == list(range(1, len(flagged_ids) + 1))
    assert found["iris-clean"]["gate"]["passed"] is True


def test_warm_rerun_trains_nothing_imports_nothing_heavy_and_agrees(
    project: pytest.Pytester,
) -> None:
    project.runpytest_subprocess("--label-quality").assert_outcomes(passed=1, failed=1)
    cold = results(project)
    warm_run = project.runpytest_subprocess("--label-quality")
    warm_run.assert_outcomes(passed=1, failed=1)
    warm_run.stdout.fnmatch_lines(["*iris-clean: cache hit, nothing to train*"])
    assert "training logistic_regression" not in warm_run.stdout.str()
    warm = results(project)
    for name in cold:
        assert warm[name]["cache"]["status"] == "hit"
        assert warm[name]["noise"] == cold[name]["noise"]
        assert warm[name]["flagged"] == cold[name]["flagged"]
    assert not imported(project) & set(HEAVY)


def test_changing_one_label_reuses_predictions_without_training(project: pytest.Pytester) -> None:
    """An item's out-of-fold prediction does not depend on its own label: nothing retrains."""
    project.runpytest_subprocess("--label-quality", "-k", "clean").assert_outcomes(passed=1)
    before = results(project)["iris-clean"]
    write_iris(project.path / "iris.npz", relabel={3: 2})
    run = project.runpytest_subprocess("--label-quality", "-k", "clean")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(
        ["*reused the out-of-fold predictions of 150 items (1 relabelled) and scored 0 new*"]
    )
    assert "training logistic_regression" not in run.stdout.str()
    after = results(project)["iris-clean"]
    assert after["cache"]["status"] == "incremental"
    assert after["cache"]["key"] != before["cache"]["key"]
    assert "iris-3" in {s["id"] for s in after["flagged"]}  # setosa now labelled virginica


def test_new_items_are_scored_by_fold_models_and_big_changes_retrain(
    project: pytest.Pytester,
) -> None:
    x, y = load_iris(return_X_y=True)
    keep = np.r_[0:48, 50:98, 100:148]
    ids = np.array([f"iris-{i}" for i in keep])
    np.savez(project.path / "iris.npz", x=x[keep], y=y[keep], ids=ids)
    project.runpytest_subprocess("--label-quality", "-k", "clean").assert_outcomes(passed=1)
    write_iris(project.path / "iris.npz")  # adds 6 items: 4% of 150
    run = project.runpytest_subprocess("--label-quality", "-k", "clean")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*of 144 items (0 relabelled) and scored 6 new or edited items*"])
    assert results(project)["iris-clean"]["cache"]["incremental"]["scored"] == 6

    write_iris(project.path / "iris.npz", flip_rows=tuple(range(0, 150, 15)))  # 10 items: 7%
    run = project.runpytest_subprocess("--label-quality", "-k", "clean")
    run.stdout.fnmatch_lines(["*more than 5%): training every fold*"])
    assert results(project)["iris-clean"]["cache"]["status"] == "miss"


def test_interrupted_run_resumes_from_finished_folds(project: pytest.Pytester) -> None:
    cache = project.path / "cache"
    project.runpytest_subprocess(
        "--label-quality", "-k", "clean", f"--label-quality-cache-dir={cache}"
    ).assert_outcomes(passed=1)
    folds = [p for p in cache.rglob("*.npz") if p.with_suffix(".joblib").exists()]
    assert len(folds) == 5  # each fold's predictions, beside its model
    # and the detection, the lineage pointer, and the duplicates and outliers
    assert len(list(cache.rglob("*.npz"))) == 8
    for entry in cache.rglob("*.npz"):
        if entry not in folds[1:]:
            entry.unlink()  # keep four folds: the others and one fold are lost
    run = project.runpytest_subprocess(
        "--label-quality", "-k", "clean", f"--label-quality-cache-dir={cache}"
    )
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*4 of 5 folds from the cache*"])
    assert results(project)["iris-clean"]["cache"]["status"] == "partial"


def test_without_the_flag_specs_are_not_collected_and_nothing_heavy_loads(
    project: pytest.Pytester,
) -> None:
    run = project.runpytest_subprocess("--co")
    assert run.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert imported(project) & {*HEAVY, "numpy", "yaml", "jinja2"} == set()
    assert not (project.path / ".pytest_cache" / "d" / "label-quality").exists()
    assert not (project.path / "label-quality-report").exists()


def test_ini_turns_it_on_and_the_cache_dir_follows_the_environment(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    project.makeini("[pytest]\nlabel_quality = true\n")
    env_cache = tmp_path / "ci-cache"
    os.environ["LABEL_QUALITY_CACHE_DIR"] = str(env_cache)
    try:
        run = project.runpytest_subprocess("-k", "clean", "-p", "no:cacheprovider")
    finally:
        del os.environ["LABEL_QUALITY_CACHE_DIR"]
    run.assert_outcomes(passed=1)
    assert len(list(env_cache.rglob("*.joblib"))) == 5
    assert results(project)["iris-clean"]["cache"]["dir"] == str(env_cache)


def test_xdist_controller_writes_every_dataset(project: pytest.Pytester) -> None:
    run = project.runpytest_subprocess("--label-quality", "-n", "2")
    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(["iris-clean * PASS *", "iris-noisy * FAIL *"])
    assert set(results(project)) == {"iris-clean", "iris-noisy"}
    html = (project.path / "label-quality-report" / "index.html").read_text()
    assert 'href="#ds-iris-clean"' in html
    assert 'href="#ds-iris-noisy"' in html


def test_junit_xml_carries_the_figures(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("--label-quality", "--junitxml=junit.xml", "-k", "noisy")
    xml = (project.path / "junit.xml").read_text()
    assert 'name="label_quality_noise_rate"' in xml
    assert 'name="label_quality_max_noise_rate" value="0.08"' in xml
    rate = results(project)["iris-noisy"]["noise"]["rate"]
    rule = f"max_noise_rate: {rate:.1%} &gt; 8.0%"
    assert f'name="label_quality_failed_rules" value="{rule}"' in xml


def test_json_path_option(project: pytest.Pytester) -> None:
    run = project.runpytest_subprocess(
        "--label-quality", "-k", "clean", "--label-quality-json=out/lq.json"
    )
    run.assert_outcomes(passed=1)
    document = json.loads((project.path / "out" / "lq.json").read_text())
    assert [d["name"] for d in document["datasets"]] == ["iris-clean"]
    assert document["passed"] is True


def test_a_bad_spec_is_a_collection_error_naming_file_line_and_key(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".labelquality.yaml",
        bad="datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
        "    gate: {max_noise_rate: 0.1, per_class: {}}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality")
    assert run.ret == pytest.ExitCode.INTERRUPTED
    assert (
        "bad.labelquality.yaml:4: datasets[0].gate.per_class: unknown key;"
        " valid keys: max_class_noise_rate, max_conflicting_duplicates, max_increase,"
        " max_leaks, max_near_duplicate_share, max_new_data_issues, max_new_suspect_share,"
        " max_new_suspects, max_noise_rate, max_outlier_share"
    ) in run.stdout.str()
    assert "Traceback" not in run.stdout.str()


def test_unusable_data_fails_its_item_with_the_file_and_the_problem(
    pytester: pytest.Pytester,
) -> None:
    np.savez(pytester.path / "d.npz", x=np.zeros((20, 2)), y=np.array([0, 1] * 9 + [0, 7]))
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: d\n    source: {format: npz, path: d.npz, classes: [a, b]}\n"
        "    gate: {max_noise_rate: 0.1}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(
        [
            "*data.labelquality.yaml:2: dataset 'd': *d.npz: labels 7 are outside the 2"
            " declared classes (valid: 0..1)"
        ]
    )
    assert "Traceback" not in run.stdout.str()


def test_a_factory_next_to_the_spec(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        my_models="""
from sklearn.neighbors import KNeighborsClassifier

def knn(num_classes, n_neighbors=5):
    assert num_classes == 3
    return KNeighborsClassifier(n_neighbors=n_neighbors)
"""
    )
    write_iris(pytester.path / "iris.npz")
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: knn\n    source: {format: npz, path: iris.npz}\n"
        "    model: {factory: 'my_models:knn', params: {n_neighbors: 7}}\n"
        "    gate: {max_noise_rate: 0.1}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality")
    run.assert_outcomes(passed=1)
    result = results(pytester)["knn"]
    assert result["model"] == {
        "name": "factory",
        "factory": "my_models:knn",
        "params": {"n_neighbors": 7},
        "epochs": 5,
        "batch_size": 128,
        "learning_rate": 0.001,
    }


def test_a_model_that_learns_nothing_is_called_too_weak(pytester: pytest.Pytester) -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 150 + [1] * 50)
    np.savez(pytester.path / "noise.npz", x=rng.normal(size=(200, 5)), y=labels)
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: noise\n    source: {format: npz, path: noise.npz}\n"
        "    gate: {max_noise_rate: 1.0}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality")
    run.assert_outcomes(passed=1, warnings=1)
    run.stdout.fnmatch_lines(
        ["*LabelQualityWarning: noise: the model is too weak for the estimate to be trusted*"]
    )
    (warning,) = results(pytester)["noise"]["warnings"]
    assert warning["code"] == "weak_model"
    assert "balanced accuracy" in warning["message"]


def test_a_skilled_model_on_imbalanced_noisy_labels_is_not_called_weak(
    pytester: pytest.Pytester,
) -> None:
    x, y = load_iris(return_X_y=True)
    keep = np.r_[0:50, 50:70]  # 50 setosa, 20 versicolor: majority answer is 71% accurate
    labels = y[keep].copy()
    labels[::9] = 1 - labels[::9]
    np.savez(pytester.path / "imb.npz", x=x[keep], y=labels)
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: imb\n    source: {format: npz, path: imb.npz}\n"
        "    gate: {max_noise_rate: 1.0}\n",
    )
    run = pytester.runpytest_subprocess("--label-quality")
    run.assert_outcomes(passed=1)
    assert results(pytester)["imb"]["warnings"] == []


def test_report_markdown_and_job_summary(project: pytest.Pytester, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
    try:
        run = project.runpytest_subprocess(
            "--label-quality",
            "--label-quality-html=out/report.html",
            "--label-quality-markdown=out/comment.md",
            "--label-quality-max-suspects=3",
        )
    finally:
        del os.environ["GITHUB_STEP_SUMMARY"]
    run.assert_outcomes(passed=1, failed=1)
    report = project.path / "out" / "report.html"
    run.stdout.fnmatch_lines([f"label-quality report: {report.as_uri()}"])
    assert run.stdout.lines[-1].startswith("=")  # the pytest footer; the report path precedes it
    html = report.read_text()
    noisy = results(project)["iris-noisy"]
    assert html.count('<figure class="suspect"') == len(noisy["flagged"])  # every one reachable
    assert 'data-page-size="3"' in html  # in pages of 3
    comment = (project.path / "out" / "comment.md").read_text()
    assert "iris-noisy" in comment
    assert "FAIL" in comment
    assert summary.read_text() == "earlier step\n" + comment  # appended, not replaced


def test_every_registered_output_has_its_option_ini_twin_and_docs_row(
    pytester: pytest.Pytester,
) -> None:
    from pytest_labelquality.outputs import OUTPUTS

    options = (Path(__file__).resolve().parents[1] / "docs" / "options.md").read_text()
    shown = pytester.runpytest_subprocess("--help").stdout.str()
    named = [o for o in OUTPUTS if o.option]
    assert [o.name for o in named] == ["json", "html", "markdown"]
    for output in named:
        assert f"{output.option}=PATH" in shown
        assert f"{output.ini} (string):" in shown
        assert f"| `{output.option} PATH` | `{output.ini}` |" in options
    assert [o.env for o in OUTPUTS if not o.option] == ["GITHUB_STEP_SUMMARY"]


def test_bad_option_values_fail_at_argument_parsing(project: pytest.Pytester) -> None:
    run = project.runpytest_subprocess("--label-quality", "--label-quality-max-suspects=-1")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*--label-quality-max-suspects: must be 0 or more, got -1*"])


BLOCK_TENSORFLOW = """\
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTensorFlow())
"""
RUN_PYTEST = BLOCK_TENSORFLOW + "import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"


def test_a_keras_model_without_tensorflow_is_one_line_naming_the_extra(
    pytester: pytest.Pytester,
) -> None:
    """A real import failure (TensorFlow made unimportable in the child), not a mock."""
    write_iris(pytester.path / "iris.npz")
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: iris\n    source: {format: npz, path: iris.npz}\n"
        "    model: {name: cnn}\n    gate: {max_noise_rate: 0.5}\n",
    )
    run = pytester.run(
        sys.executable, "-c", RUN_PYTEST, "--label-quality", "-p", "no:cacheprovider"
    )
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    line = (
        "data.labelquality.yaml:2: dataset 'iris': model 'cnn' needs TensorFlow, which is not"
        " installed: install the keras extra, pip install 'pytest-labelquality[keras]'"
    )
    assert [x for x in run.stdout.lines if x.endswith(line)], run.stdout.str()
    assert "Traceback" not in run.stdout.str()


def test_without_tensorflow_the_default_image_model_needs_none(pytester: pytest.Pytester) -> None:
    """From 5 classes the default is small_cnn, but only where the keras extra is installed."""
    resolve = (
        "from pathlib import Path\n"
        "from pytest_labelquality.models import resolve_model\n"
        "from pytest_labelquality.spec import ModelSpec\n"
        "for classes in (2, 10):\n"
        "    config = resolve_model(ModelSpec(), image=True, spec_dir=Path('.'),"
        " train_items=800, classes=classes)\n"
        "    print(classes, config.name)\n"
    )
    without = pytester.run(sys.executable, "-c", BLOCK_TENSORFLOW + resolve)
    assert without.stdout.lines == ["2 hog_boosting", "10 hog_boosting"], without.stderr.str()
    installed = pytester.run(sys.executable, "-c", resolve)
    assert installed.stdout.lines == ["2 hog_boosting", "10 small_cnn"], installed.stderr.str()


def test_only_the_specs_are_collected_with_the_ini_twin(pytester: pytest.Pytester) -> None:
    write_iris(pytester.path / "iris.npz")
    pytester.makefile(".labelquality.yaml", data=SPEC.split("  - name: iris-noisy")[0])
    pytester.makepyfile(test_unit="import not_installed_anywhere\n")
    pytester.makeini("[pytest]\nlabel_quality_only = true\n")
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    run.assert_outcomes(passed=1)
    assert "not_installed_anywhere" not in run.stdout.str()
