"""The typed training configuration: what can be set, its default, its meaning, and its checks.

Where values come from (defaults < TOML preset < flags file < command line) lives in
`hfgpt.config_sources`; this module only describes and validates the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import HfGptError
from .files import check_run_name


def setting(default: Any, help: str) -> Any:
    """A dataclass field whose help text is kept for `--help` and error messages."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ModelSection:
    hidden_size: int = setting(128, "Width of the residual stream (embedding dimension).")
    intermediate_size: int = setting(0, "Width of the MLP; 0 means 4 x hidden_size.")
    num_hidden_layers: int = setting(4, "Number of decoder blocks.")
    num_attention_heads: int = setting(4, "Attention heads per block; must divide hidden_size.")
    max_position_embeddings: int = setting(128, "Longest context the model can attend over.")
    dropout: float = setting(0.0, "Dropout on embeddings, attention weights and residual branches.")
    bias: bool = setting(False, "Use biases in linear layers and norms (GPT-2 does).")
    hidden_act: str = setting("gelu", "MLP activation, any name in transformers' ACT2FN.")
    layer_norm_eps: float = setting(1e-5, "Epsilon of the layer norms.")
    initializer_range: float = setting(0.02, "Std of the normal weight init (residual projections are scaled).")
    tie_word_embeddings: bool = setting(True, "Share the input embedding with the output head.")
    attn_implementation: str = setting("sdpa", "Attention kernel: sdpa (flash/mem-efficient on GPU) or eager.")
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass to save memory.")


@dataclass
class DataSection:
    train: str = setting("", "Training text: comma-separated .txt files or folders, .jsonl or .parquet files, "
                             "relative to datadir, or one .bin shard of token ids (a folder holding train.bin). "
                             "Empty: the Python standard library (see README).")
    valid: str = setting("", "Validation sets, same syntax as train. Empty: hold out valid_fraction of train.")
    meta: str = setting("", "Path of the meta.json describing .bin shards (nanoGPT's train.bin/val.bin token ids, "
                            "given as train/valid), relative to datadir; empty: meta.json beside the train shard.")
    datadir: str = setting(".", "Folder that relative train/valid paths start from.")
    dataset: str = setting("", "A Hub dataset id to train on instead of local files (needs internet once).")
    dataset_config: str = setting("", "The Hub dataset's configuration name, if it has several.")
    train_split: str = setting("train", "Split of the Hub dataset used for training.")
    valid_split: str = setting("", "Split of the Hub dataset used for validation; empty: hold out.")
    text_column: str = setting("text", "Column that holds the text in .jsonl, .parquet and Hub datasets.")
    valid_fraction: float = setting(0.05, "Share of the packed training blocks held out when no valid set is given.")
    tokenizer: str = setting("char", "Tokenizer to train on the training text: char or bpe.")
    vocab_size: int = setting(8192, "Target vocabulary size of the bpe tokenizer (char derives its own).")
    seq_len: int = setting(0, "Tokens per training block; 0 means max_position_embeddings.")
    num_proc: int = setting(1, "Processes used to tokenize.")
    cache_dir: str = setting("", "Where tokenizers and packed Arrow data are cached; "
                                 "empty: $HFGPT_CACHE or ~/.cache/hfgpt.")
    reset: bool = setting(False, "Retrain the tokenizer and rebuild the packed data instead of using the cache.")


@dataclass
class TrainingSection:
    max_steps: int = setting(2000, "Optimizer steps to train for.")
    # One optimizer step = micro-batch x accumulation x processes; see resolve_layout in hfgpt/batches.py.
    batch_size: int = setting(12, "Sequences per device in one micro-batch (one forward pass); an optimizer step "
                                  "takes batch_size x grad_accum_steps of them per device. A cap below batch_size "
                                  "splits them into more, smaller micro-batches of the same total.")
    token_batch_size: int = setting(0, "Tokens per optimizer step across all devices; replaces batch_size x "
                                       "grad_accum_steps x processes, so that a step is the same on any number of "
                                       "devices (the accumulation adapts). 0: off.")
    max_tokens_per_device: int = setting(0, "Cap on the tokens of one micro-batch; accumulation makes up the "
                                            "rest. 0: no cap.")
    max_sentences_per_device: int = setting(0, "Cap on the sequences of one micro-batch. 0: no cap.")
    grad_accum_steps: int = setting(0, "Micro-batches accumulated into one optimizer step (batch_size x "
                                       "grad_accum_steps sequences per device); 0: one, or as many as the caps "
                                       "need.")
    lr_scaling: str = setting("none", "Scale lr (and lr_head) from base_batch_size to the global batch: "
                                      "none, linear or sqrt.")
    base_batch_size: int = setting(0, "Global batch in sequences that lr was tuned for (used by lr_scaling).")
    lr: float = setting(1e-3, "Peak learning rate.")
    lr_head: float = setting(0.0, "Peak learning rate of the output head; 0 means lr (used only when untied).")
    min_lr_ratio: float = setting(0.1, "The cosine schedule ends at lr x min_lr_ratio.")
    warmup_steps: int = setting(100, "Linear warmup steps before the cosine decay.")
    weight_decay: float = setting(0.1, "AdamW weight decay; never applied to norms, biases and embeddings.")
    beta1: float = setting(0.9, "AdamW beta1.")
    beta2: float = setting(0.95, "AdamW beta2.")
    max_grad_norm: float = setting(1.0, "Clip the global gradient norm to this; 0 disables clipping.")
    precision: str = setting("fp32", "fp32, fp16 (CUDA only) or bf16.")
    device: str = setting("auto", "auto, cpu or cuda.")
    cpu_threads: int = setting(0, "Threads per process when training on the CPU; 0: the cores shared out "
                                  "among this machine's processes (accelerate launch would leave one).")
    seed: int = setting(1337, "Seeds the weights, the data order and dropout.")
    eval_every: int = setting(250, "Evaluate every this many steps (and at the end); 0 only at the end.")
    eval_batches: int = setting(20, "Validation batches per evaluation, each the size of the global batch "
                                    "(at most the whole validation set, each block once).")
    early_stopping: bool = setting(False, "Stop when the validation loss has not improved for `patience` evaluations.")
    patience: int = setting(5, "Evaluations without improvement before early stopping stops the run.")
    early_stopping_min_delta: float = setting(0.0, "Smallest drop of the validation loss that counts as an "
                                                   "improvement (for early stopping and best/).")
    max_bad_steps: int = setting(10, "Steps in a row with a non-finite loss or gradient (each skipped) "
                                     "before the run stops with a diagnostic.")
    stop_at_step: int = setting(0, "Stop cleanly (checkpoint, status interrupted) once this many steps are done, "
                                   "without changing the schedule; resume with continue. 0: never.")
    deterministic: bool = setting(False, "Use deterministic algorithms only (bitwise-reproducible runs, slower "
                                         "on GPUs).")


@dataclass
class LoggingSection:
    log_every: int = setting(10, "Print and log metrics every this many steps.")
    # setting() turns a list default into a default_factory, so no instance shares it.
    trackers: list[str] = setting(["tensorboard"], "accelerate trackers: tensorboard, wandb, ... or none.")  # noqa: RUF009
    progress_bar: bool = setting(True, "Show a tqdm progress bar on the main process.")
    log_samples: bool = setting(False, "Write the ids of the training blocks every process reads at each step to "
                                       "samples.jsonl (a data audit trail).")
    sample_prompt: str = setting("\n", "Prompt of the sample generated at the end of training.")
    sample_tokens: int = setting(200, "Tokens generated for the end-of-training sample; 0 skips it.")


@dataclass
class CheckpointSection:
    rundir: str = setting("runs", "Folder that holds the run directories.")
    run_name: str = setting("", "Name of this run's directory inside rundir: letters, digits and ._-+=@, with / "
                                "between parts to group runs (exp1/lr-3e-4); empty: date-time-user.")
    ckpt_every: int = setting(500, "Save a resumable checkpoint every this many steps; 0 only at the end.")
    keep_last: int = setting(0, "Keep only the newest N periodic checkpoints (0 keeps all); the best one and "
                                "the one the run resumed from are never pruned.")
    save_best: bool = setting(True, "Keep best/, a save_pretrained model of the lowest validation loss so far.")
    overwrite: bool = setting(False, "Let train replace an existing hfgpt run of the same name; the old run is "
                                     "deleted once the new one has its first checkpoint, and kept if it fails "
                                     "before.")


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)

    @property
    def seq_len(self) -> int:
        return self.data.seq_len or self.model.max_position_embeddings

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Reject values that cannot train, naming the flag and the fix."""
        m, d, t, lg, c = self.model, self.data, self.training, self.logging, self.checkpoint
        check_run_name(c.run_name)
        checks = [
            (m.hidden_size > 0, "--hidden-size must be positive"),
            (m.num_hidden_layers > 0, "--num-hidden-layers must be positive"),
            (m.num_attention_heads > 0 and m.hidden_size % m.num_attention_heads == 0,
             f"--num-attention-heads ({m.num_attention_heads}) must divide --hidden-size ({m.hidden_size})"),
            (m.intermediate_size >= 0, "--intermediate-size must be 0 (4 x hidden) or positive"),
            (m.max_position_embeddings > 0, "--max-position-embeddings must be positive"),
            (0.0 <= m.dropout < 1.0, "--dropout must be in [0, 1)"),
            (m.attn_implementation in ("sdpa", "eager"), "--attn-implementation must be sdpa or eager"),
            (d.tokenizer in ("char", "bpe"), "--tokenizer must be char or bpe"),
            (d.vocab_size >= 260, "--vocab-size must be at least 260 (256 bytes plus special tokens)"),
            (0 < self.seq_len <= m.max_position_embeddings,
             f"--seq-len ({d.seq_len}) must be between 1 and --max-position-embeddings "
             f"({m.max_position_embeddings}); lower it or raise the model's context"),
            (0.0 < d.valid_fraction < 1.0, "--valid-fraction must be between 0 and 1"),
            (not d.meta or d.meta.endswith(".json"),
             f"--meta ({d.meta}) must name a .json file; convert nanoGPT's meta.pkl to meta.json first"),
            (d.num_proc > 0, "--num-proc must be positive"),
            (t.max_steps > 0, "--max-steps must be positive"),
            (t.batch_size > 0, "--batch-size must be positive"),
            (t.grad_accum_steps >= 0, "--grad-accum-steps must be 0 (derived) or positive"),
            (t.token_batch_size >= 0, "--token-batch-size must be 0 (off) or positive"),
            (t.max_tokens_per_device >= 0, "--max-tokens-per-device must be 0 (no cap) or positive"),
            (t.max_sentences_per_device >= 0, "--max-sentences-per-device must be 0 (no cap) or positive"),
            (t.lr_scaling in ("none", "linear", "sqrt"), "--lr-scaling must be none, linear or sqrt"),
            (t.lr_scaling == "none" or t.base_batch_size > 0,
             f"--lr-scaling {t.lr_scaling} needs --base-batch-size, the global batch (in sequences) "
             "that --lr was tuned for"),
            (t.lr > 0, "--lr must be positive"),
            (t.lr_head >= 0, "--lr-head must be 0 (same as --lr) or positive"),
            (0.0 <= t.min_lr_ratio <= 1.0, "--min-lr-ratio must be in [0, 1]"),
            (t.warmup_steps >= 0, "--warmup-steps must not be negative"),
            (t.weight_decay >= 0, "--weight-decay must not be negative"),
            (0.0 <= t.beta1 < 1.0 and 0.0 <= t.beta2 < 1.0, "--beta1 and --beta2 must be in [0, 1)"),
            (t.max_grad_norm >= 0, "--max-grad-norm must be 0 (off) or positive"),
            (t.precision in ("fp32", "fp16", "bf16"), "--precision must be fp32, fp16 or bf16"),
            (t.device in ("auto", "cpu", "cuda"), "--device must be auto, cpu or cuda"),
            (t.cpu_threads >= 0, "--cpu-threads must be 0 (automatic) or positive"),
            (t.eval_every >= 0, "--eval-every must be 0 (only at the end) or positive"),
            (t.eval_batches > 0, "--eval-batches must be positive"),
            (t.patience > 0, "--patience must be positive"),
            (t.early_stopping_min_delta >= 0, "--early-stopping-min-delta must not be negative"),
            (t.max_bad_steps > 0, "--max-bad-steps must be positive"),
            (t.stop_at_step >= 0, "--stop-at-step must be 0 (never) or positive"),
            (lg.log_every > 0, "--log-every must be positive"),
            (lg.sample_tokens >= 0, "--sample-tokens must not be negative"),
            (c.ckpt_every >= 0, "--ckpt-every must be 0 (only at the end) or positive"),
            (c.keep_last >= 0, "--keep-last must be 0 (keep all) or positive"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise HfGptError("Invalid configuration: " + "; ".join(problems) + ".")
        return self
