"""Maintainers accept a pull request's suspects from a comment: ``/label-quality accept ID ...``.

Run by a workflow on ``issue_comment`` that never checks out or runs the pull request's code:

    python -m pytest_labelquality.accept --event "$GITHUB_EVENT_PATH" --remote URL

The commenter must have write access to the repository and must not be the pull request's
author (a change cannot approve itself). The suspects' hashes come from the results of the
check's latest run on the pull request's head (its artifact); the decisions are committed as
review entries to a branch of their own (``label-quality-decisions``), which only people with
write access can push and which every run of the check reads (``--label-quality-decisions-ref``),
on the pull request and on main after merge. Then the check is re-run and the comment answered.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import LabelQualityError
from pytest_labelquality.result import Decision, RunResult

COMMAND = "/label-quality accept"
WRITERS = frozenset({"admin", "maintain", "write"})
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


def parse_command(body: str) -> list[str] | None:
    """The item ids of the comment's accept command (quotes keep an id whole), or None when it
    holds none."""
    for line in body.splitlines():
        words = line.strip()
        if words == COMMAND or words.startswith(COMMAND + " "):
            try:
                return shlex.split(words[len(COMMAND) :])
            except ValueError:
                return words[len(COMMAND) :].split()
    return None


@dataclass(frozen=True)
class GitHub:
    """The REST API of one repository (``GITHUB_API_URL``, ``GITHUB_REPOSITORY``)."""

    api: str
    repository: str
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request to ``/repos/OWNER/NAME{path}``; its JSON answer (None when empty)."""
        raw = self.fetch(f"{self.api}/repos/{self.repository}{path}", method, body)
        return json.loads(raw) if raw.strip() else None

    def fetch(self, url: str, method: str = "GET", body: dict[str, Any] | None = None) -> bytes:
        """A request's body; redirects are followed (artifact downloads answer with one)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        if self.token and url.startswith(self.api):  # never sent on to artifact storage
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return bytes(answer.read())
        except (urllib.error.URLError, OSError) as exc:
            raise LabelQualityError(f"GitHub API {method} {url}: {exc}") from None


def refusal(github: GitHub, event: dict[str, Any]) -> str | None:
    """Why the commenter may not accept suspects, or None when they may: the pull request's
    author never, others with write access (admin, maintain, write) only."""
    login = event["comment"]["user"]["login"]
    if login == event["issue"]["user"]["login"]:
        return f"@{login} opened this pull request, so cannot accept its suspects; a maintainer can"
    permission = github.call("GET", f"/collaborators/{login}/permission")
    level = permission.get("role_name") or permission.get("permission")
    if permission.get("permission") not in WRITERS and level not in WRITERS:
        return f"@{login} has no write access to this repository ({level}): not accepted"
    return None


def latest_results(
    github: GitHub, head_sha: str, workflow: str, artifact: str
) -> tuple[int, RunResult]:
    """The id of the check's latest run on ``head_sha`` and the results in its artifact."""
    runs = github.call("GET", f"/actions/runs?head_sha={head_sha}&event=pull_request")
    mine = [r for r in runs["workflow_runs"] if r["name"] == workflow]
    if not mine:
        raise LabelQualityError(f"no {workflow!r} run on {head_sha[:12]} yet: wait for the check")
    run = max(mine, key=lambda r: (r["run_number"], r.get("run_attempt", 1)))
    listed = github.call("GET", f"/actions/runs/{run['id']}/artifacts")
    found = [a for a in listed["artifacts"] if a["name"] == artifact]
    if not found:
        raise LabelQualityError(f"run {run['id']} has no artifact {artifact!r}")
    archive = zipfile.ZipFile(io.BytesIO(github.fetch(found[0]["archive_download_url"])))
    try:
        document = json.loads(archive.read("label-quality.json"))
    except KeyError:
        raise LabelQualityError(f"artifact {artifact!r} holds no label-quality.json") from None
    return int(run["id"]), RunResult.from_json(document)


def record(
    folder: Path, results: RunResult, ids: list[str], *, by: str, note: str
) -> tuple[dict[str, list[str]], list[str]]:
    """Review entries (decision ``correct``) for the suspects among ``ids``, in the review files
    under ``folder`` at their specs' paths; returns the ids accepted by dataset, and the ids that
    are no suspect of the run."""
    from pytest_labelquality.reviews import add_reviews

    accepted: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        results_path = Path(scratch) / "label-quality.json"
        results_path.write_text(json.dumps(results.to_json()), encoding="utf-8")
        for dataset in results.datasets:
            suspects = {s.id for s in dataset.flagged}
            mine = [i for i in dict.fromkeys(ids) if i in suspects]
            if not mine:
                continue
            spec = folder / dataset.spec.file
            spec.parent.mkdir(parents=True, exist_ok=True)
            add_reviews(
                spec,
                dataset.name,
                mine,
                decision=Decision.CORRECT,
                by=by,
                note=note,
                results_path=results_path,
            )
            accepted[dataset.name] = mine
    found = {i for mine in accepted.values() for i in mine}
    return accepted, [i for i in dict.fromkeys(ids) if i not in found]


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=120, check=False
    )


def checkout_branch(remote: str, branch: str, folder: Path) -> None:
    """``folder`` holds the decisions branch of ``remote``, or starts it when there is none."""
    folder.mkdir(parents=True, exist_ok=True)
    _git(folder, "init", "-q")
    _git(folder, "remote", "add", "origin", remote)
    if _git(folder, "fetch", "-q", "--depth=1", "origin", f"refs/heads/{branch}").returncode:
        _git(folder, "checkout", "-q", "--orphan", branch)
    else:
        _git(folder, "checkout", "-q", "-B", branch, "FETCH_HEAD")


def push_branch(folder: Path, branch: str, message: str) -> None:
    """Commit everything in ``folder`` as the bot and push it to the decisions branch."""
    name, email = BOT
    _git(folder, "add", "-A")
    committed = _git(
        folder,
        "-c",
        f"user.name={name}",
        "-c",
        f"user.email={email}",
        "commit",
        "-q",
        "-m",
        message,
    )
    pushed = _git(folder, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    if committed.returncode or pushed.returncode:
        raise LabelQualityError(
            f"cannot record the decisions on {branch}: {committed.stderr or pushed.stderr}".strip()
        )


def handle(
    github: GitHub,
    event: dict[str, Any],
    *,
    remote: str,
    branch: str,
    workflow: str,
    artifact: str,
    folder: Path,
) -> str:
    """Handle one comment; returns the answer posted on the pull request ('' when the comment
    holds no command)."""
    ids = parse_command(event["comment"]["body"])
    number = event["issue"]["number"]
    if ids is None or "pull_request" not in event["issue"]:
        return ""
    answer = refusal(github, event)
    if answer is None and not ids:
        answer = f"name the suspects to accept: `{COMMAND} ID [ID ...]` (ids as in the report)"
    if answer is None:
        try:
            answer = _accept(github, event, ids, remote, branch, workflow, artifact, folder)
        except LabelQualityError as exc:
            answer = f"nothing accepted: {exc}"
    body = f"**Label quality:** {answer}."
    github.call("POST", f"/issues/{number}/comments", {"body": body})
    return body


def _accept(
    github: GitHub,
    event: dict[str, Any],
    ids: list[str],
    remote: str,
    branch: str,
    workflow: str,
    artifact: str,
    folder: Path,
) -> str:
    """Record an authorised commenter's decisions, re-run the check; the answer in words."""
    number, login = event["issue"]["number"], event["comment"]["user"]["login"]
    pull = github.call("GET", f"/pulls/{number}")
    run_id, results = latest_results(github, pull["head"]["sha"], workflow, artifact)
    checkout_branch(remote, branch, folder)
    note = f"accepted on pull request #{number}"
    accepted, unknown = record(folder, results, ids, by=login, note=note)
    parts = []
    if accepted:
        listed = "; ".join(f"{d}: {', '.join(i)}" for d, i in accepted.items())
        push_branch(folder, branch, f"Accept suspects of #{number} for @{login}: {listed}")
        github.call("POST", f"/actions/runs/{run_id}/rerun")
        parts.append(
            f"accepted as correct by @{login} ({listed}), recorded on `{branch}`; the check"
            " runs again"
        )
    if unknown:
        parts.append(f"not among the suspects of the last run: {', '.join(unknown)}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_labelquality.accept --event PATH --remote URL``"""
    parser = argparse.ArgumentParser(prog="python -m pytest_labelquality.accept")
    parser.add_argument("--event", type=Path, required=True, help="the issue_comment payload")
    parser.add_argument("--remote", required=True, help="the repository to push decisions to")
    parser.add_argument("--branch", default="label-quality-decisions", help="%(default)s")
    parser.add_argument("--workflow", default="label-quality", help="the check's workflow name")
    parser.add_argument("--artifact", default="label-quality-report", help="%(default)s")
    parser.add_argument("--folder", type=Path, default=Path("label-quality-decisions"))
    args = parser.parse_args(argv)
    env = os.environ
    github = GitHub(
        env.get("GITHUB_API_URL", "https://api.github.com"),
        env["GITHUB_REPOSITORY"],
        env.get("GITHUB_TOKEN", ""),
    )
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
        answer = handle(
            github,
            event,
            remote=args.remote,
            branch=args.branch,
            workflow=args.workflow,
            artifact=args.artifact,
            folder=args.folder,
        )
    except (LabelQualityError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(answer or "no accept command in this comment")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
