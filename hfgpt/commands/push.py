"""`hfgpt push SOURCE --repo-id NAME`: upload a run's model (or any saved model folder) to the Hugging Face Hub
in one commit, with its model card and loss plot; `--include-checkpoints` adds what `hfgpt continue` needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def push(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="hfgpt push", description="Upload a model to the Hugging Face Hub in "
                                     "one commit (huggingface_hub; the token is HF_TOKEN or `hf auth login`'s).")
    parser.add_argument("source", help="a run directory (its final/, else best/), a save_pretrained folder (an "
                        "`hfgpt export` one too) or a .gguf file")
    parser.add_argument("--repo-id", required=True, help="the Hub repo, owner/name (created if it does not exist)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", default=None, help="the branch to commit to (created if needed); default main")
    parser.add_argument("--commit-message", default="", help="default: hfgpt: push RUN")
    parser.add_argument("--include-checkpoints", action="store_true",
                        help="also the run's verified checkpoints and records, so that `hfgpt continue NAME` resumes "
                             "it on another machine")
    parser.add_argument("--license", default="", help="the license in the card's metadata (when it writes one)")
    args = parser.parse_args(argv)

    from ..console import quiet_libraries
    from ..sharing.hub import check_can_push, check_repo_id, ensure_repo, upload
    from ..sharing.publish import push_files

    quiet_libraries()
    source = Path(args.source)
    check_repo_id(args.repo_id, "--repo-id")
    files = push_files(source, args.repo_id, args.include_checkpoints, args.license)  # local mistakes first
    check_can_push(args.repo_id, "--repo-id")
    repo_id = ensure_repo(args.repo_id, args.private)
    print(f"uploading {len(files)} files from {source} to {repo_id} ...", file=sys.stderr)
    url = upload(repo_id, files, args.commit_message or f"hfgpt: push {source.resolve().name}",
                 revision=args.revision)
    for name in sorted(files):
        print(f"  {name}")
    print(f"pushed: {url}")
