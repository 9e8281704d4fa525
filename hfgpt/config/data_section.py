"""The data section of the training configuration: where the text comes from, how it is tokenized and packed."""

from __future__ import annotations

from dataclasses import dataclass

from .fields import NOT_NEGATIVE, POSITIVE, Bounds, setting, zero_or_positive

MIN_BPE_VOCAB = 256 + 3  # every byte, plus hfgpt's three special tokens (end of text, pad, unk)


@dataclass
class DataSection:
    train: str = setting("", "Training text: comma-separated .txt, .jsonl and .parquet files or folders relative to "
                             "datadir, or a .bin shard of token ids (or its folder); PATH:WEIGHT items mix sources "
                             "(docs/data.md). Empty: the Python standard library.", on_continue="allow",
                         aliases=("data-path",), local="files")
    valid: str = setting("", "Validation sets, same syntax as train, each evaluated on its own. Empty: hold out "
                             "valid_fraction of train (of each weighted source).", on_continue="allow", local="files")
    max_epochs_per_source: float = setting(0.0, "Passes over a mixed source's blocks after which it leaves the "
                                                "mixture. 0: no cap.", bounds=NOT_NEGATIVE)
    meta: str = setting("", "Path of the meta.json describing .bin shards (nanoGPT's train.bin/val.bin token ids, "
                            "given as train/valid), relative to datadir; empty: meta.json beside the train shard.",
                        on_continue="allow", local="files")
    datadir: str = setting(".", "Folder that relative train/valid paths start from; a run saves it as an absolute "
                                "path, so that `continue` finds the data from any working directory.",
                           on_continue="allow", local="folder")
    dataset: str = setting("", "A Hub dataset id to train on instead of local files (needs internet once).",
                           local="path-or-name")
    dataset_config: str = setting("", "The Hub dataset's configuration name, if it has several.")
    train_split: str = setting("train", "Split of the Hub dataset used for training.")
    valid_split: str = setting("", "Split of the Hub dataset used for validation; empty: hold out.")
    text_column: str = setting("text", "Column that holds the text in .jsonl, .parquet and Hub datasets.")
    valid_fraction: float = setting(0.05, "Share of the packed training blocks held out when no valid set is "
                                          "given.", bounds=Bounds(low=0, high=1, low_open=True, high_open=True))
    tokenizer: str = setting("char", "char or bpe, trained on the training text; or a ready tokenizer: a "
                                     "tokenizer.json, a folder AutoTokenizer loads (relative to --tokensdir) or a Hub "
                                     "id such as gpt2.", local="path-or-name")
    tokensdir: str = setting("", "Where a relative --tokenizer path is looked up (default: the working directory).",
                             local="folder")
    vocab_size: int = setting(8192, "Target vocabulary size of the bpe tokenizer (char derives its own).",
                              bounds=Bounds(low=MIN_BPE_VOCAB, reason="256 bytes plus 3 special tokens"))
    tokenizer_sample: int = setting(1000, "MB of training text the bpe tokenizer trains on: all of it when there "
                                          "is no more, else a uniform sample of this size (with streaming: the "
                                          "first MB of the stream). 0: all of it, however big. char reads all.",
                                    bounds=NOT_NEGATIVE)
    split_documents: str = setting("file", "What a .txt file holds: one document (file) or documents separated by "
                                           "blank lines (blank-line); each document ends with an end-of-text token.",
                                   choices=("file", "blank-line"))
    streaming: bool = setting(False, "Tokenize and pack the training text on the fly from a stream (datasets' "
                                     "IterableDataset) instead of a packed cache: for corpora bigger than the disk. "
                                     "continue resumes at the saved stream position, on as many processes.")
    seq_len: int = setting(0, "Tokens per training block; 0 means max_position_embeddings.",
                           bounds=zero_or_positive("max_position_embeddings"))
    num_proc: int = setting(1, "Processes used to tokenize (1: this one).", bounds=POSITIVE, on_continue="allow")
    cache_dir: str = setting("", "Where tokenizers and packed Arrow data are cached; empty: $HFGPT_CACHE or "
                                 "~/.cache/hfgpt. Shared by all machines: built once; node-local: once per machine.",
                             on_continue="allow", local="folder")
    reset: bool = setting(False, "Retrain the tokenizer and rebuild the packed data instead of using the cache.",
                          on_continue="launch")


__all__ = ["MIN_BPE_VOCAB", "DataSection"]
