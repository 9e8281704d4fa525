"""The Hugging Face Hub, faked at the `huggingface_hub` boundary: the three `HfApi` methods that hfgpt's pushes
call over the network (`create_repo`, `create_branch`, `create_commit`) are replaced by ones that record what
they were asked and answer as the Hub does. Everything above them is real: hfgpt builds real
`CommitOperationAdd`/`CommitOperationDelete` objects (hashing each file as huggingface_hub does), and the fake
reads each operation's bytes back through `CommitOperationAdd.as_file()`, as the real upload would.

For downloads (`snapshot_download`, `from_pretrained` of a Hub id) the tests use huggingface_hub's own offline
mode over a cache laid out as the Hub would have filled it (`cache_as_downloaded`), so no call is faked there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, RepoUrl, constants

USER = "fake-user"


def online(monkeypatch) -> None:
    """huggingface_hub as without HF_HUB_OFFLINE, which the suite sets (tests/isolated_environment.py) and which
    huggingface_hub read once, at import: for a test that fakes the Hub or points it where nothing listens."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@dataclass
class Commit:
    repo_id: str
    message: str
    revision: str | None
    files: dict[str, bytes]  # path in the repo -> content
    deleted: list[str]


@dataclass
class FakeHub:
    """What the fake Hub was asked: repos created (id, private), branches, commits; `failures` makes the next
    that many commits fail as a network error would."""

    repos: list[tuple[str, bool]] = field(default_factory=list)
    branches: list[tuple[str, str]] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    failures: int = 0

    def full_id(self, repo_id: str) -> str:
        return repo_id if "/" in repo_id else f"{USER}/{repo_id}"

    def install(self, monkeypatch) -> FakeHub:
        hub = self

        def create_repo(api, repo_id, *, private=None, exist_ok=False, repo_type=None, token=None, **_):
            hub.repos.append((hub.full_id(repo_id), bool(private)))
            return RepoUrl(f"{api.endpoint}/{hub.full_id(repo_id)}", endpoint=api.endpoint)

        def create_branch(api, repo_id, *, branch, exist_ok=False, **_):
            hub.branches.append((repo_id, branch))

        def create_commit(api, repo_id, operations, *, commit_message, revision=None, **_):
            if hub.failures:
                hub.failures -= 1
                raise ConnectionError("the fake Hub is unreachable")
            files, deleted = {}, []
            for operation in operations:
                if isinstance(operation, CommitOperationAdd):
                    with operation.as_file() as handle:
                        files[operation.path_in_repo] = handle.read()
                else:
                    assert isinstance(operation, CommitOperationDelete)
                    deleted.append(operation.path_in_repo)
            hub.commits.append(Commit(repo_id, commit_message, revision, files, deleted))
            url = f"{api.endpoint}/{repo_id}/commit/{len(hub.commits):040x}"
            return CommitInfo(commit_url=url, commit_message=commit_message, commit_description="",
                              oid=f"{len(hub.commits):040x}")

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "create_branch", create_branch)
        monkeypatch.setattr(HfApi, "create_commit", create_commit)
        monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
        online(monkeypatch)
        return self


def cache_as_downloaded(cache: Path, repo_id: str, files: dict[str, bytes], revision: str = "main") -> Path:
    """Lay out `files` in a Hub cache (`HF_HUB_CACHE`) as huggingface_hub leaves a download of `repo_id`, so
    that its offline mode serves them; returns the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        path = snapshot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot
