"""The training configuration: every setting with its default, meaning and rules, in seven sections.

Where values come from (defaults < TOML preset < flags file < command line) lives in `hfgpt.config.sources`;
this module describes and validates the result. The model and data sections live in `model_section` and
`data_section`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import HfGptError
from .data_section import DataSection
from .fields import NOT_NEGATIVE, POSITIVE, Bounds, rules_of, setting, zero_or_positive
from .model_section import ModelSection
from .run_names import check_run_name


@dataclass
class TrainingSection:
    max_steps: int = setting(1200, "Optimizer steps to train for.", bounds=POSITIVE, on_continue="allow",
                             aliases=("max-iters", "steps"))
    horizon_ratio: float = setting(20.0, "With --depth: training tokens per parameter of the decoder blocks, from "
                                         "which it derives --max-steps (Chinchilla's 20).", bounds=POSITIVE)
    # One optimizer step = micro-batch x accumulation x processes; see resolve_layout in hfgpt/data/batches.py.
    batch_size: int = setting(16, "Sequences per device in one micro-batch (one forward pass); an optimizer step "
                                  "takes batch_size x grad_accum_steps of them per device. A cap below batch_size "
                                  "splits them into more, smaller micro-batches of the same total.",
                              bounds=POSITIVE, aliases=("batch", "batchsize"))
    token_batch_size: int = setting(0, "Tokens per optimizer step across all devices; replaces batch_size x "
                                       "grad_accum_steps x processes, so that a step is the same on any number of "
                                       "devices (the accumulation adapts). 0: off.", bounds=zero_or_positive("off"))
    max_tokens_per_device: int = setting(0, "Cap on the tokens of one micro-batch; accumulation makes up the "
                                            "rest. 0: no cap.", bounds=zero_or_positive("no cap"))
    max_sentences_per_device: int = setting(0, "Cap on the sequences of one micro-batch. 0: no cap.",
                                            bounds=zero_or_positive("no cap"))
    grad_accum_steps: int = setting(0, "Micro-batches accumulated into one optimizer step (batch_size x "
                                       "grad_accum_steps sequences per device); 0: one, or as many as the caps "
                                       "need.", bounds=zero_or_positive("derived"),
                                    aliases=("grad-accum", "gradient-accumulation-steps"))
    lr_scaling: str = setting("none", "Scale lr, lr_head and muon_lr from base_batch_size to the global batch: "
                                      "none, linear or sqrt.", choices=("none", "linear", "sqrt"))
    base_batch_size: int = setting(0, "Global batch in sequences that lr was tuned for (used by lr_scaling).",
                                   bounds=NOT_NEGATIVE)
    lr: float = setting(2e-3, "Peak learning rate.", bounds=POSITIVE, on_continue="warn",
                        aliases=("learning-rate",))
    lr_head: float = setting(0.0, "Peak learning rate of the output head; 0 means lr (used only when untied).",
                             bounds=zero_or_positive("same as --lr"), on_continue="warn", aliases=("lrcrit",))
    criterion: str = setting("ce", "The training objective: ce, cross-entropy of the next token (with the options "
                                   "below). The reported loss is always the plain cross-entropy.", choices=("ce",))
    label_smoothing: float = setting(0.0, "Label smoothing of the cross-entropy objective.",
                                     bounds=Bounds(low=0, high=1, high_open=True))
    z_loss: float = setting(0.0, "Weight of PaLM's z-loss, w * log(Z)^2 of the softmax normaliser Z (PaLM: 1e-4); "
                                 "0: off.", bounds=NOT_NEGATIVE)
    min_lr_ratio: float = setting(0.1, "The cosine schedule ends at lr x min_lr_ratio.", bounds=Bounds(low=0, high=1))
    warmup_steps: int = setting(100, "Linear warmup steps before the cosine decay.", bounds=NOT_NEGATIVE)
    weight_decay: float = setting(0.1, "AdamW weight decay; never applied to norms, biases and embeddings.",
                                  bounds=NOT_NEGATIVE)
    beta1: float = setting(0.9, "AdamW beta1.", bounds=Bounds(low=0, high=1, high_open=True))
    beta2: float = setting(0.95, "AdamW beta2.", bounds=Bounds(low=0, high=1, high_open=True))
    optimizer: str = setting("adamw", "adamw, or muon: torch's Muon (Keller Jordan's, as in modded-nanogpt) for the "
                                      "weight matrices inside the blocks and AdamW for embeddings, head, norms and "
                                      "biases; not under DeepSpeed or FSDP.", choices=("adamw", "muon"),
                             implied_before="adamw")
    muon_lr: float = setting(0.02, "Muon's peak learning rate, on the same schedule as lr (Keller Jordan's 0.02).",
                             bounds=POSITIVE, on_continue="warn")
    muon_momentum: float = setting(0.95, "Muon's Nesterov momentum.", bounds=Bounds(low=0, high=1, high_open=True))
    muon_weight_decay: float = setting(0.01, "Muon's decoupled weight decay, times its learning rate as AdamW's is.",
                                       bounds=NOT_NEGATIVE)
    max_grad_norm: float = setting(1.0, "Clip the global gradient norm to this; 0 disables clipping.",
                                   bounds=zero_or_positive("off"))
    precision: str = setting("auto", "auto, fp32, fp16 (CUDA only) or bf16 (autocast; weights and optimizer stay "
                                     "fp32). auto: bf16 where the hardware computes it natively (a CUDA GPU with "
                                     "bf16, a CPU with AVX512-BF16 or AMX), else fp32; a run saves what it chose.",
                             choices=("auto", "fp32", "fp16", "bf16"))
    optimizer_kernel: str = setting("auto", "AdamW's implementation: fused (one kernel for all parameters), foreach or "
                                            "for-loop; auto: fused where torch has it for the device (not under "
                                            "DeepSpeed, which steps the optimizer itself), else foreach.",
                                    choices=("auto", "fused", "foreach", "for-loop"), implied_before="foreach")
    step_sync: str = setting("auto", "When the host reads each step's skip and stop flags: every-step (before the "
                                     "update; the host waits for the device once a step) or lagged (the device skips "
                                     "a non-finite update itself and the host reads the flags a step later, or at the "
                                     "next log, evaluation or checkpoint, so a GPU never idles between steps; needs "
                                     "fused AdamW, and not Muon, fp16, DeepSpeed or FSDP). auto: lagged "
                                     "where that holds on a GPU, else every-step.",
                             choices=("auto", "every-step", "lagged"), on_continue="allow",
                             implied_before="every-step")
    compile: bool = setting(False, "Compile the model with torch.compile (the first step takes longer; a platform "
                                   "where it fails trains uncompiled, with a warning).")
    compile_mode: str = setting("default", "torch.compile mode.", choices=("default", "reduce-overhead", "max-autotune",
                                                                          "max-autotune-no-cudagraphs"))
    peak_tflops: float = setting(0.0, "Peak TFLOPS of one device for the MFU figure; 0: from a table of GPUs, or "
                                      "measured once on a CPU.", bounds=NOT_NEGATIVE, on_continue="allow")
    device: str = setting("auto", "auto, cpu or cuda.", choices=("auto", "cpu", "cuda"), on_continue="allow")
    cpu_threads: int = setting(0, "Threads per process when training on the CPU; 0: the cores shared out "
                                  "among this machine's processes (accelerate launch would leave one).",
                               bounds=zero_or_positive("automatic"), on_continue="allow")
    seed: int = setting(1337, "Seeds the weights, the data order and dropout.")
    eval_every: int = setting(250, "Evaluate every this many steps (and at the end); 0 only at the end.",
                              bounds=zero_or_positive("only at the end"), on_continue="allow",
                              aliases=("eval-interval",))
    eval_batches: int = setting(20, "Validation batches per evaluation, each the size of the global batch "
                                    "(at most the whole validation set, each block once).", bounds=POSITIVE,
                                on_continue="allow")
    eval_tasks: str = setting("", "Downstream tasks scored at each evaluation: comma-separated .jsonl files of "
                                  "multiple-choice items, or lm-evaluation-harness task names (docs/sharing.md).",
                              on_continue="allow")
    eval_task_items: int = setting(0, "Items of each task scored in the loop (its first ones); 0: all.",
                                   bounds=NOT_NEGATIVE, on_continue="allow")
    task_dir: str = setting("", "A folder of your own lm-evaluation-harness task YAML files, for --eval-tasks.",
                            on_continue="allow", local="folder")
    early_stopping: bool = setting(False, "Stop when the validation loss has not improved for `patience` "
                                          "evaluations.", on_continue="allow")
    best_metric: str = setting("valid", "What early stopping and best/ follow: the loss valid (all sets) or "
                                        "valid/NAME, or the centred score task/NAME (higher is better).")
    patience: int = setting(5, "Evaluations without improvement before early stopping stops the run.",
                            bounds=POSITIVE, on_continue="allow")
    early_stopping_min_delta: float = setting(0.0, "Smallest drop of the validation loss that counts as an "
                                                   "improvement (for early stopping and best/).",
                                              bounds=NOT_NEGATIVE, on_continue="allow")
    max_bad_steps: int = setting(10, "Steps in a row with a non-finite loss or gradient (each skipped) "
                                     "before the run stops with a diagnostic.", bounds=POSITIVE, on_continue="allow")
    stop_at_step: int = setting(0, "Stop cleanly (checkpoint, status interrupted) once this many steps are done, "
                                   "without changing the schedule; resume with continue. 0: never.",
                                bounds=zero_or_positive("never"), on_continue="launch")
    deterministic: bool = setting(False, "Use deterministic algorithms on a GPU too (bitwise-reproducible GPU runs, "
                                         "slower). A CPU run always uses them: they keep it bitwise reproducible, "
                                         "compiled or not.", on_continue="allow")


@dataclass
class LoggingSection:
    log_every: int = setting(10, "Print and log metrics every this many steps.", bounds=POSITIVE,
                             on_continue="allow", aliases=("log-interval",))
    # setting() turns a list default into a default_factory, so no instance shares it.
    trackers: list[str] = setting(["tensorboard"], "accelerate trackers: tensorboard, wandb, ... or none.",  # noqa: RUF009
                                  on_continue="allow")
    progress_bar: bool = setting(True, "Show a tqdm progress bar on the main process.", on_continue="allow")
    log_samples: bool = setting(False, "Write the ids of the training blocks every process reads at each step to "
                                       "samples.jsonl (a data audit trail).", on_continue="allow")
    sample_prompt: str = setting("\n", "Prompt of the sample generated at the end of training.", on_continue="allow")
    sample_tokens: int = setting(200, "Tokens generated for the end-of-training sample; 0 skips it.",
                                 bounds=NOT_NEGATIVE, on_continue="allow")
    # The tracking seed's W&B flags; the project is --wandb-project, else $WANDB_PROJECT, else "hfgpt".
    wandb: bool = setting(False, "Log to Weights & Biases too (adds wandb to --trackers).", on_continue="allow")
    wandb_project: str = setting("", "W&B (and Trackio) project; empty: $WANDB_PROJECT, else hfgpt. The run name "
                                     "is the W&B run name.", on_continue="allow")
    wandb_entity: str = setting("", "W&B entity (user or team); empty: your default one.", on_continue="allow")
    wandb_group: str = setting("", "W&B group of runs.", on_continue="allow", aliases=("group",))
    wandb_job_type: str = setting("", "W&B job type.", on_continue="allow", aliases=("job-type",))
    wandb_mode: str = setting("auto", "W&B mode: online, offline (sync later with `wandb sync`) or disabled; auto: "
                                      "$WANDB_MODE, else online.", choices=("auto", "online", "offline", "disabled"),
                              on_continue="allow")
    wandb_resume_id: str = setting("", "Resume this W&B run id; empty: a new W&B run, which `continue` resumes.",
                                   on_continue="allow")


@dataclass
class CheckpointSection:
    ckpt_every: int = setting(500, "Save a resumable checkpoint every this many steps; 0 only at the end.",
                              bounds=zero_or_positive("only at the end"), on_continue="allow")
    keep_last: int = setting(0, "Keep only the newest N periodic checkpoints (0 keeps all); the best one and "
                                "the one the run resumed from are never pruned.", bounds=zero_or_positive("keep all"),
                             on_continue="allow")
    save_best: bool = setting(True, "Keep best/, a save_pretrained model of the lowest validation loss so far.",
                              on_continue="allow")


@dataclass
class RunSection:
    # `continue RUN_DIR` says where its run is, so the saved place is taken for this launch only.
    rundir: str = setting("runs", "Folder that holds the run directories.", on_continue="launch",
                          former_section="checkpoint", local="folder")
    run_name: str = setting("", "Name of this run's directory inside rundir: letters, digits and ._-+=@, with / "
                                "between parts to group runs (exp1/lr-3e-4); empty: date-time-user.",
                            on_continue="launch", aliases=("runname",), former_section="checkpoint")
    overwrite: bool = setting(False, "Let train replace an existing hfgpt run of the same name; the old run is "
                                     "deleted once the new one has its first checkpoint, and kept if it fails "
                                     "before.", on_continue="launch", former_section="checkpoint")


@dataclass
class HubSection:
    # Spelled as transformers' Trainer spells them.
    push_to_hub: bool = setting(False, "Upload the model to the Hugging Face Hub (in the background; a failed upload "
                                       "is a warning, retried at the next save).", on_continue="allow")
    hub_model_id: str = setting("", "The Hub repo to push to, owner/name (or name, under your account).",
                                on_continue="allow")
    hub_strategy: str = setting("end", "When to push: end (final/), every_save (the model at every checkpoint) or "
                                       "checkpoint (also the latest resumable checkpoint, for `continue`).",
                                choices=("end", "every_save", "checkpoint"), on_continue="allow")
    hub_private: bool = setting(False, "Create the Hub repo private.", on_continue="allow")
    license: str = setting("", "License of the model card's metadata (e.g. apache-2.0, mit); empty: none stated.",
                           on_continue="allow")


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    run: RunSection = field(default_factory=RunSection)
    hub: HubSection = field(default_factory=HubSection)

    @property
    def seq_len(self) -> int:
        return self.data.seq_len or self.model.max_position_embeddings

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Reject values that cannot train, all at once, each naming its flag and the fix."""
        check_run_name(self.run.run_name)  # a path posing as a name gets a paragraph of its own
        if self.logging.wandb and "wandb" not in self.logging.trackers:
            self.logging.trackers = [*self.logging.trackers, "wandb"]
        problems = [*self.field_problems(), *self._joint_problems()]
        if problems:
            raise HfGptError("Invalid configuration: " + "; ".join(problems) + ".")
        return self

    def field_problems(self) -> list[str]:
        """Values their own setting refuses (out of bounds, not a choice), each naming its flag."""
        return [f"--{f.name.replace('_', '-')} {problem}" for section in dataclasses.fields(self)
                for f in dataclasses.fields(getattr(self, section.name))
                if (problem := rules_of(f).problem(getattr(getattr(self, section.name), f.name)))]

    def _joint_problems(self) -> list[str]:
        """Rules that tie settings together."""
        m, d, t = self.model, self.data, self.training
        checks = [
            (m.num_attention_heads <= 0 or m.hidden_size % m.num_attention_heads == 0,
             f"--num-attention-heads ({m.num_attention_heads}) must divide --hidden-size ({m.hidden_size})"),
            (m.num_key_value_heads <= 0 or m.num_attention_heads % m.num_key_value_heads == 0,
             f"--num-key-value-heads ({m.num_key_value_heads}) must divide --num-attention-heads "
             f"({m.num_attention_heads})"),
            (m.position_embedding_type != "rotary" or m.num_attention_heads <= 0
             or m.hidden_size // m.num_attention_heads % 2 == 0,
             f"rotary positions need an even head size, but --hidden-size {m.hidden_size} / "
             f"--num-attention-heads {m.num_attention_heads} is odd"),
            (self.seq_len <= m.max_position_embeddings,
             f"--seq-len ({d.seq_len}) must be between 1 and --max-position-embeddings "
             f"({m.max_position_embeddings}); lower it or raise the model's context"),
            (not d.meta or d.meta.endswith(".json"),
             f"--meta ({d.meta}) must name a .json file; convert nanoGPT's meta.pkl to meta.json first"),
            (t.lr_scaling == "none" or t.base_batch_size > 0,
             f"--lr-scaling {t.lr_scaling} needs --base-batch-size, the global batch (in sequences) "
             "that --lr was tuned for"),
            (not self.hub.push_to_hub or self.hub.hub_model_id,
             "--push-to-hub needs --hub-model-id, the repo to push to (owner/name)"),
        ]
        return [message for ok, message in checks if not ok]
