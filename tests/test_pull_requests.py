"""Gating dataset pull requests end to end, on real git repositories made here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits

# Real digits hold a few look-alikes (a 9 drawn like a 7): adding 200 correct items may
# name up to about 4 of them, while a wrong relabelling names 17 or more.
MAX_NEW_SUSPECTS = 5

SPEC = """\
datasets:
  - name: digits
    source: {format: npz, path: digits.npz, ids: ids}
    model: {name: logistic_regression, params: {C: 0.05}}
    detection: {count: off_diagonal_calibrated}
    gate: {max_noise_rate: 0.05, max_new_suspects: MAX}
""".replace("MAX", str(MAX_NEW_SUSPECTS))


class Repo:
    """A dataset repository: digits with ids, a spec, git, and pytest runs against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir()
        x, y = load_digits(return_X_y=True)
        self.x, self.y = x, y
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "ci@example.invalid")
        self.git("config", "user.name", "CI")
        (self.data / "digits.labelquality.yaml").write_text(SPEC)

    def git(self, *args: str) -> str:
        run = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def write(self, rows: range, labels: dict[int, int] | None = None) -> None:
        y = self.y.copy()
        for row, label in (labels or {}).items():
            y[row] = label
        ids = np.array([f"digit-{i}" for i in rows])
        np.savez(self.data / "digits.npz", x=self.x[list(rows)], y=y[list(rows)], ids=ids)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def check(self, *args: str) -> tuple[int, str, dict[str, Any]]:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "--label-quality", "-p", "no:cacheprovider", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={"LABEL_QUALITY_CACHE_DIR": str(self.root / ".cache"), "PATH": "/usr/bin:/bin"},
        )
        document = json.loads((self.root / "label-quality-report/label-quality.json").read_text())
        return run.returncode, run.stdout, document["datasets"][0]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """main: 1,500 digits, their spec and a baseline written by the plugin."""
    repo = Repo(tmp_path_factory.mktemp("dataset-repo"))
    repo.write(range(1500))
    code, out, first = repo.check("--label-quality-update-baseline")
    assert code == 0, out
    # writing the first baseline: no advice to write one
    assert "write one with --label-quality-update-baseline" not in out
    assert [w for w in first["warnings"] if w["code"] == "no_baseline"] == []
    baseline = json.loads((repo.data / "digits.labelquality.baseline.json").read_text())
    entry = baseline["datasets"]["digits"]
    assert len(entry["items"]) == 1500
    assert "commit" not in baseline  # the commit that will hold it does not exist yet
    repo.commit("digits, spec and baseline")
    return repo


def test_a_committed_baseline_is_one_sorted_line_per_item(repo: Repo) -> None:
    """3 items relabelled and the baseline refreshed: its diff is those items' lines and the
    estimate's, not the whole file (it was pretty-printed at about 73 bytes an item)."""
    path = repo.data / "digits.labelquality.baseline.json"
    lines = path.read_text().splitlines()
    items = [line for line in lines if line.startswith('"digit-')]
    entry = json.loads(path.read_text())["datasets"]["digits"]
    assert len(items) == 1500 + len(entry["suspects"])  # an item or a suspect per line
    assert len(lines) < len(items) + 10
    names = [line.split('"')[1] for line in items[len(entry["suspects"]) :]]
    assert names == sorted(names)
    assert max(len(line) for line in items) < 60

    repo.git("checkout", "-q", "-b", "refresh", "main")
    repo.write(range(1500), {r: int((repo.y[r] + 1) % 10) for r in (10, 20, 30)})
    _, out, _ = repo.check("--label-quality-update-baseline")
    assert "label-quality baseline written: data/digits.labelquality.baseline.json" in out
    numstat = repo.git("diff", "--numstat", "--", str(path)).split()
    added, removed = int(numstat[0]), int(numstat[1])
    assert 3 <= added <= 3 + 1 + 2 * MAX_NEW_SUSPECTS, numstat  # items, estimate, suspects
    assert 3 <= removed <= added
    repo.git("checkout", "-q", "--", ".")
    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "refresh")


def test_the_baseline_is_of_the_commit_that_holds_it_not_of_head(repo: Repo) -> None:
    held = repo.git("log", "-1", "--format=%H", "--", "data").strip()
    repo.git("checkout", "-q", "-b", "later", "main")
    (repo.root / "README.md").write_text("a later commit that leaves the baseline alone\n")
    repo.commit("readme")
    head = repo.git("rev-parse", "HEAD").strip()
    _, _, result = repo.check()
    assert result["baseline"]["baseline_commit"] == held != head
    _, _, trusted = repo.check("--label-quality-trusted-ref", head)
    assert trusted["baseline"]["baseline_commit"] == held

    path = repo.data / "digits.labelquality.baseline.json"
    path.write_text(path.read_text().replace('"noise_count"', ' "noise_count"', 1))
    _, _, edited = repo.check()  # edited since: no commit holds this version
    assert edited["baseline"]["baseline_commit"] is None
    repo.git("checkout", "-q", "--", ".")
    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "later")


def test_a_baseline_store_is_used_instead_of_the_committed_file(repo: Repo, tmp_path: Path) -> None:
    """main's run writes its result to a store (the folder CI saves per commit); a branch is
    judged against the store, whatever it commits beside the spec."""
    store = tmp_path / "store"
    main = repo.git("rev-parse", "HEAD").strip()
    # --option=value: pytest takes a separate value that is an existing path for a rootdir arg
    code, out, result = repo.check(
        "--label-quality-update-baseline", f"--label-quality-baseline-dir={store}"
    )
    assert code == 0, out
    saved = store / "data" / "digits.labelquality.baseline.json"
    assert f"label-quality baseline written: {saved}" in out
    assert json.loads(saved.read_text())["commit"] == main
    assert not repo.git("status", "--porcelain", "--", "data")  # nothing to commit

    repo.git("checkout", "-q", "-b", "store-judged", "main")
    repo.write(range(1500), wrong_labels(repo, RELABELLED))
    (repo.data / "digits.labelquality.baseline.json").unlink()  # no committed baseline
    code, out, result = repo.check(f"--label-quality-baseline-dir={store}")
    assert code == 1, out
    assert result["baseline"]["baseline_commit"] == main
    assert len(result["baseline"]["new_suspects"]) >= 17
    repo.git("checkout", "-q", "--", ".")
    repo.git("checkout", "-q", "main")


def wrong_labels(repo: Repo, rows: list[int]) -> dict[int, int]:
    return {r: int((repo.y[r] + 3) % 10) for r in rows}


RELABELLED = list(range(7, 1500, 75))  # 20 items


def test_a_branch_relabelling_20_items_wrongly_fails_naming_exactly_them(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "relabel", "main")
    repo.write(range(1500), wrong_labels(repo, RELABELLED))
    code, out, result = repo.check()
    assert code == 1
    change = result["baseline"]
    assert change["changed_items"] == 20
    named = set(change["changed_suspects"])
    relabelled = {f"digit-{r}" for r in RELABELLED}
    assert named <= relabelled, "only relabelled items are named as new suspects"
    assert len(named) >= 17  # the rest look like their wrong label to the model too
    assert f"{len(named)} new suspects (of the 20 items this change added or relabelled)" in out
    assert f"max_new_suspects: {len(named)} > {MAX_NEW_SUSPECTS}" in out  # under the table
    assert change["new_suspects"] == change["changed_suspects"]  # one meaning, older name kept
    message = out[out.index("New suspects: ") :].split(". ")[0]
    assert {part.split(" ")[0] for part in message[14:].split("), ")} <= relabelled
    repo.git("checkout", "-q", "--", ".")
    repo.git("checkout", "-q", "main")


def test_a_branch_adding_correctly_labelled_items_passes(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "more-digits", "main")
    repo.write(range(1700))
    code, out, result = repo.check()
    assert code == 0, out
    change = result["baseline"]
    assert change["changed_items"] == 200
    assert len(change["changed_suspects"]) <= MAX_NEW_SUSPECTS
    repo.git("checkout", "-q", "--", ".")
    repo.git("checkout", "-q", "main")


def test_a_reviewed_item_stops_counting_until_it_changes(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "reviewed", "main")
    rows = RELABELLED[: MAX_NEW_SUSPECTS + 1]
    repo.write(range(1500), wrong_labels(repo, rows))
    code, out, result = repo.check()
    assert code == 1
    assert len(result["baseline"]["changed_suspects"]) == len(rows)

    add = subprocess.run(
        [
            sys.executable, "-m", "pytest_labelquality.reviews", "add",
            "data/digits.labelquality.yaml", "digits", f"digit-{rows[0]}",
            "--decision", "correct", "--by", "alice", "--note", "checked by hand",
        ],
        cwd=repo.root, capture_output=True, text=True,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    reviews = (repo.data / "digits.labelquality.reviews.yaml").read_text()
    assert f'id: "digit-{rows[0]}"' in reviews
    code, out, result = repo.check()
    assert code == 0, out  # MAX_NEW_SUSPECTS new suspects left: at the limit
    assert result["reviews"]["decisions"] == {f"digit-{rows[0]}": "correct"}
    assert f"digit-{rows[0]}" not in result["baseline"]["changed_suspects"]
    reviewed = next(s for s in result["flagged"] if s["id"] == f"digit-{rows[0]}")
    assert reviewed["review"] == "correct"

    later = wrong_labels(repo, rows)
    later[rows[0]] = int((repo.y[rows[0]] + 5) % 10)  # relabelled again after the review
    repo.write(range(1500), later)
    code, out, result = repo.check()
    assert code == 1
    assert result["reviews"]["stale"] == [f"digit-{rows[0]}"]
    assert f"the review of 'digit-{rows[0]}' (correct, by alice) no longer applies" in out
    assert f"digit-{rows[0]}" in result["baseline"]["changed_suspects"]


def reviews_add(repo: Repo, *args: str) -> None:
    add = subprocess.run(
        [sys.executable, "-m", "pytest_labelquality.reviews", "add",
         "data/digits.labelquality.yaml", "digits", *args, "--by", "mallory"],
        cwd=repo.root, capture_output=True, text=True,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr


def test_a_branch_cannot_approve_itself_against_the_base(repo: Repo) -> None:
    """The branch rewrites its baseline and reviews its own suspects as correct: judged with its
    own files it passes, judged against main's (the trusted ref) it fails, saying why."""
    repo.git("clean", "-fq", "data")  # review files other tests left untracked
    repo.git("checkout", "-q", "-b", "self-approve", "main")
    repo.write(range(1500), wrong_labels(repo, RELABELLED))
    code, out, result = repo.check()
    assert code == 1, out
    suspects = result["baseline"]["new_suspects"]
    reviews_add(repo, *suspects[:2], "--decision", "correct")
    code, out, result = repo.check("--label-quality-update-baseline")
    repo.commit("relabel, rewrite the baseline, review my own suspects")

    code, out, own = repo.check()
    assert code == 0, out  # its own files wave it through
    accepted = set(own["baseline"]["accepted_by_review"])
    assert accepted == set(suspects[:2])
    assert not accepted & set(own["baseline"]["resolved_suspects"])  # accepted is not resolved

    code, out, trusted = repo.check("--label-quality-trusted-ref", "main")
    assert code == 1, out
    assert set(trusted["baseline"]["new_suspects"]) == set(suspects)
    assert trusted["reviews"]["decisions"] == {}
    edited = {Path(p).name for p in trusted["trust"]["edited"]}
    assert edited == {"digits.labelquality.baseline.json", "digits.labelquality.reviews.yaml"}
    assert "take effect after merge" in out
    rules = trusted["gate"]["failed_rules"]
    assert [(r["rule"], r["value"], r["limit"]) for r in rules] == [
        ("max_new_suspects", len(suspects), MAX_NEW_SUSPECTS)
    ]
    repo.git("checkout", "-q", "--", ".")
    repo.git("checkout", "-q", "main")


def test_a_fixed_review_records_the_label_change_and_a_re_review_replaces(repo: Repo) -> None:
    repo.git("clean", "-fq", "data")
    repo.git("checkout", "-q", "-b", "fix-labels", "main")
    rows = RELABELLED[: MAX_NEW_SUSPECTS + 1]
    repo.write(range(1500), wrong_labels(repo, rows))
    code, out, result = repo.check()
    assert code == 1, out
    item = f"digit-{rows[0]}"
    right = str(int(repo.y[rows[0]]))
    reviews_add(repo, item, "--decision", "ambiguous")
    reviews_add(repo, item, "--decision", "fixed", "--label", right)
    entries = yaml.safe_load((repo.data / "digits.labelquality.reviews.yaml").read_text())
    assert [(e["id"], e["decision"], e.get("label")) for e in entries] == [(item, "fixed", right)]

    code, out, result = repo.check()  # the fix is recorded, not yet made: the item counts
    assert result["reviews"]["pending"] == [item]
    assert item in result["baseline"]["new_suspects"]
    assert f"the fix recorded for '{item}' (label '{right}', by mallory) is not in the data" in out

    fixed = wrong_labels(repo, rows[1:])
    repo.write(range(1500), fixed)  # the fix itself: the review must not go stale because of it
    code, out, result = repo.check()
    assert code == 0, out
    assert result["reviews"]["stale"] == []
    assert result["reviews"]["decisions"] == {item: "fixed"}
    repo.git("checkout", "-q", "--", ".")
    repo.git("clean", "-fq", "data")
    repo.git("checkout", "-q", "main")


def test_concurrent_reviews_add_keep_every_entry(repo: Repo) -> None:
    """Eight reviewers record eight suspects at once: each run re-reads the file under a lock,
    so every entry survives (before, four or five of eight did)."""
    repo.git("clean", "-fq", "data")
    repo.git("checkout", "-q", "-b", "many-reviewers", "main")
    repo.write(range(1500), wrong_labels(repo, RELABELLED))
    code, out, result = repo.check()
    assert code == 1, out
    suspects = result["baseline"]["new_suspects"][:8]
    assert len(suspects) == 8
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest_labelquality.reviews",
                "add",
                "data/digits.labelquality.yaml",
                "digits",
                item,
                "--decision",
                "correct",
                "--by",
                f"reviewer-{n}",
            ],
            cwd=repo.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, item in enumerate(suspects)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    entries = yaml.safe_load((repo.data / "digits.labelquality.reviews.yaml").read_text())
    assert sorted(e["id"] for e in entries) == sorted(suspects)
    assert {e["by"] for e in entries} == {f"reviewer-{n}" for n in range(8)}
    repo.git("checkout", "-q", "--", ".")
    repo.git("clean", "-fq", "data")
    repo.git("checkout", "-q", "main")
