"""The Hugging Face Hub, through `huggingface_hub` only: checking that a push can work before any work is done,
creating the repo, uploading files in one commit, and downloading a pushed run to `continue` it.

What a push uploads (`model_files`, `run_files`) is a map from the path in the repo to a local file or bytes:

    README.md, loss.png, config.json, model.safetensors, generation_config.json, tokenizer files,
    configuration_hfgpt.py, modeling_hfgpt.py       the model (final/, best/, or a checkpoint's weights)
    checkpoints/step_<N>/..., config.toml, run.json, train_log.jsonl, tokenizer/, architecture/
                                                    with checkpoints: the run's own files, as in its
                                                    directory, so that `hfgpt continue` resumes it

Every failure of the Hub (offline mode, no network, no token, a refused token, no write access) is one
`HfGptError` sentence that says what to do; a push never changes a local file.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from ..errors import HfGptError
from ..runs.checkpoint import CHECKPOINTS
from ..runs.logbook import TRAIN_LOG
from ..runs.rundir import ARCHITECTURE, CONFIG, TOKENIZER
from ..runs.runinfo import RUN_INFO

# A pushed run's own files, beside the model's; what `continue` downloads.
RUN_PATTERNS = [CONFIG, RUN_INFO, TRAIN_LOG, f"{TOKENIZER}/*", f"{ARCHITECTURE}/*", f"{CHECKPOINTS}/*"]
Upload = dict[str, Path | bytes | IO[bytes]]  # path in the repo -> content
_SKIPPED = {"latest", "latest.txt", "latest.tmp"}  # pointers that name a checkpoint which may not be uploaded


def check_repo_id(repo_id: str, flag: str = "--hub-model-id") -> str:
    """`repo_id` if it is a valid Hub model id (owner/name or name), else one clear error."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HfGptError(f"{flag} {repo_id!r} is not a valid Hub repo id ({str(error).splitlines()[0]}); write "
                         "owner/name, e.g. my-user/shakespeare-char.") from None
    return repo_id


def check_can_push(repo_id: str, flag: str = "--hub-model-id") -> None:
    """What can be known without the network: the repo id, offline mode, and a token to push with."""
    check_repo_id(repo_id, flag)
    if constants.is_offline_mode():
        raise HfGptError(f"Cannot push to {repo_id}: HF_HUB_OFFLINE is set, so huggingface_hub does not reach the "
                         "Hub. Unset it to push; nothing was uploaded and no local file was changed.")
    if not get_token():
        raise HfGptError(f"Cannot push to {repo_id}: there is no Hugging Face token. Set HF_TOKEN, or log in once "
                         "with `hf auth login`; nothing was uploaded.")


@contextlib.contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn whatever the Hub answers into one sentence that starts with `what` ("Cannot push to x/y")."""
    try:
        yield
    except HfGptError:
        raise
    except OfflineModeIsEnabled:
        raise HfGptError(f"{what}: HF_HUB_OFFLINE is set. Unset it and try again; no local file was "
                         "changed.") from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        reason = {401: "the Hub refused the token (set a valid HF_TOKEN, or `hf auth login`)",
                  403: "the token may not write there (a write token, and your account or an organization you "
                       "may write to)", 404: "the Hub has no such repo or revision"}.get(status, "")
        raise HfGptError(f"{what}: {reason or str(error).splitlines()[0]}. No local file was changed.") from None
    except Exception as error:
        if not _network_error(error):
            raise
        if constants.is_offline_mode():  # nothing was asked of the Hub: the cache has no copy
            raise HfGptError(f"{what}: HF_HUB_OFFLINE is set, so huggingface_hub reads only its cache "
                             f"({constants.HF_HUB_CACHE}), and the cache holds no copy of it. Unset HF_HUB_OFFLINE "
                             "to download it (that needs the network once); no local file was changed.") from None
        raise HfGptError(f"{what}: the Hub at {constants.ENDPOINT} cannot be reached ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'no answer'}). Check the network, or set "
                         "HF_HUB_OFFLINE=1 to work without it; no local file was changed.") from None


def _network_error(error: Exception) -> bool:
    """No network, a refused connection, a timeout: an OSError, or an error of the HTTP library underneath
    huggingface_hub (httpx, httpx2 since 2.0, requests before 1.0), told by its module so as not to import it."""
    return isinstance(error, OSError) or type(error).__module__.startswith(("httpx", "httpcore", "requests",
                                                                             "urllib3"))


def ensure_repo(repo_id: str, private: bool) -> str:
    """Create the model repo if it does not exist (kept as it is if it does); returns its full id."""
    with hub_errors(f"Cannot create the Hub repo {repo_id}"):
        return HfApi().create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id


def upload(repo_id: str, files: Upload, message: str, revision: str | None = None,
           deleted: list[str] = ()) -> str:
    """Upload `files` (and delete the `deleted` folders) in one commit; returns the commit's URL."""
    operations: list[Any] = [CommitOperationDelete(path_in_repo=folder.rstrip("/") + "/", is_folder=True)
                             for folder in deleted]
    operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if not isinstance(content, Path)
                                      else str(content)) for name, content in sorted(files.items())]
    with hub_errors(f"Cannot push to {repo_id}"):
        api = HfApi()
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.create_commit(repo_id, operations, commit_message=message, revision=revision).commit_url


def folder_files(folder: Path, prefix: str = "") -> dict[str, Path]:
    """Every file under `folder` (hidden names and checkpoint pointers left out), by path in the repo."""
    return {prefix + path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and path.name not in _SKIPPED
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)}


def run_files(run_dir: Path, checkpoints: list[Path]) -> dict[str, Path]:
    """What another machine needs to `hfgpt continue` the run, where the run directory has it."""
    files = {name: run_dir / name for name in (CONFIG, RUN_INFO, TRAIN_LOG) if (run_dir / name).is_file()}
    for folder in (TOKENIZER, ARCHITECTURE):
        files |= folder_files(run_dir / folder, f"{folder}/")
    for checkpoint in checkpoints:
        files |= folder_files(checkpoint, f"{CHECKPOINTS}/{checkpoint.name}/")
    return files


def looks_like_hub_id(text: str) -> bool:
    """Whether `text` names a Hub repo rather than a local path: owner/name, with no such path here."""
    if text.count("/") != 1 or text.startswith((".", "/", "~")) or _exists_here(text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _exists_here(text: str) -> bool:
    try:
        return Path(text).expanduser().exists()
    except OSError:  # a name the OS cannot even look up (one too long) is no path here either
        return False


def download_run(repo_id: str, into: Path, revision: str | None = None) -> Path:
    """The run pushed to `repo_id` with its checkpoints, downloaded into `into` (a run directory)."""
    with hub_errors(f"Cannot download the run pushed to {repo_id}"):
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=RUN_PATTERNS))
    if not (folder / CONFIG).is_file() or not (folder / CHECKPOINTS).is_dir():
        raise HfGptError(f"The Hub repo {repo_id} holds no run to continue (no {CONFIG} and {CHECKPOINTS}/): push "
                         f"it with `hfgpt push RUN --repo-id {repo_id} --include-checkpoints`, or train with "
                         "`--hub-strategy checkpoint`.")
    staging = into.with_name(f".{into.name}.download")
    shutil.rmtree(staging, ignore_errors=True)
    _copy_tree(folder, staging)
    os.replace(staging, into)  # whole, or not at all
    return into


def _copy_tree(source: Path, target: Path) -> None:
    """Copy the downloaded files (links into the Hub cache) as plain files, so the run is writable."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        name = path.relative_to(source).as_posix()
        if path.is_dir() or not any(fnmatch.fnmatch(name, pattern) for pattern in RUN_PATTERNS):
            continue  # the model's files beside the run's (an offline snapshot holds all that was downloaded)
        destination = target / name
        if path.name not in _SKIPPED:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
