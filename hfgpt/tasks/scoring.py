"""Multiple-choice items scored as lm-evaluation-harness scores them (its `HFLM.loglikelihood` and its
`multiple_choice` metrics), so that a local task and the same items as an lm-eval task give the same accuracy.

A choice's score is the sum of the log-probabilities of its tokens after the context. The pair is tokenized as
lm-eval tokenizes it: spaces that end the context move to the start of the continuation, `context + continuation`
is tokenized whole and the continuation is what follows the context's own tokens (so a token that spans the
boundary belongs to the continuation, and both are tokenized as the model saw text in training); an empty context
is the BOS token (else EOS). The input is the last `max_length + 1` tokens less the last one. `acc` picks the choice
of the highest sum, `acc_norm` of the highest sum per character of the choice (lm-eval's, a choice's `len`);
`centred` is `(acc - chance) / (1 - chance)`, 0 for a guess and 1 for a perfect score, as nanochat's CORE centres.

Requests are dealt round-robin to the processes, sorted longest first and batched with padding on the right (a
causal model's padding after the text changes nothing before it); every process runs as many forward passes
(ZeRO-3 needs them all), and the scores are gathered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from transformers import PreTrainedTokenizerBase

from .items import Task


@dataclass(frozen=True)
class Request:
    task: int
    item: int
    choice: int
    tokens: tuple[int, ...]  # the model's input
    scored: int  # the last `scored` input positions predict the continuation's tokens
    targets: tuple[int, ...]


def encode_pair(tokenizer: PreTrainedTokenizerBase, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The context's and the continuation's tokens, split as lm-evaluation-harness splits them."""
    if not context:
        continuation_ids = tokenizer.encode(continuation, add_special_tokens=False)
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return ([prefix], continuation_ids) if continuation_ids[0] != prefix else \
            (continuation_ids[:1], continuation_ids[1:])
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole, context_ids = tokenizer.encode(context + continuation), tokenizer.encode(context)
    return context_ids, whole[len(context_ids):]


def requests(tasks: list[Task], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list[Request]:
    """One request per choice of every item of every task."""
    found = []
    for t, task in enumerate(tasks):
        for i, item in enumerate(task.items):
            for c, choice in enumerate(item.choices):
                context_ids, continuation_ids = encode_pair(tokenizer, item.context, item.delimiter + choice)
                whole = (context_ids + continuation_ids)[-(max_length + 1):]
                found.append(Request(t, i, c, tuple(whole[:-1]), len(continuation_ids), tuple(continuation_ids)))
    return found


def score_tasks(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, tasks: list[Task],
                accelerator: Accelerator, batch_size: int, max_length: int) -> dict[str, dict[str, float]]:
    """acc, acc_norm, chance, centred and the number of items of each task, on every process."""
    every, likelihoods = log_likelihoods(model, tokenizer, tasks, accelerator, batch_size, max_length)
    return {task.name: _metrics(task, t, every, likelihoods) for t, task in enumerate(tasks)}


@torch.no_grad()
def log_likelihoods(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, tasks: list[Task],
                    accelerator: Accelerator, batch_size: int, max_length: int) -> tuple[list[Request], np.ndarray]:
    """Every request (one per choice of every item) and its log-likelihood, on every process; the model is left in
    training mode if it was."""
    every = requests(tasks, tokenizer, max_length)
    mine = sorted(range(accelerator.process_index, len(every), accelerator.num_processes),
                  key=lambda index: -len(every[index].tokens))
    passes = -(-len(range(0, len(every), accelerator.num_processes)) // batch_size)
    training = model.training
    model.eval()
    scores: list[tuple[int, float]] = []
    with torch.compiler.set_stance("force_eager"):  # a compiled model: no second graph for scoring
        for start in range(0, passes * batch_size, batch_size):
            batch = mine[start:start + batch_size]
            # an empty batch (a process short of work) runs the first request again, only to keep in step
            sums = _log_likelihoods(model, [every[index] for index in batch] or every[:1], tokenizer, accelerator)
            scores += list(zip(batch, sums, strict=False))
    model.train(training)
    gathered = dict(pair for part in gather_object([scores]) for pair in part)
    return every, np.array([gathered[index] for index in range(len(every))])


def _log_likelihoods(model: torch.nn.Module, batch: list[Request], tokenizer: PreTrainedTokenizerBase,
                     accelerator: Accelerator) -> list[float]:
    """The sum of each request's continuation log-probabilities, one padded forward pass."""
    width = max(len(request.tokens) for request in batch)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([list(r.tokens) + [pad] * (width - len(r.tokens)) for r in batch], device=accelerator.device)
    logits = model(input_ids=ids, use_cache=False).logits.float()
    sums = []
    for row, request in enumerate(batch):
        end = len(request.tokens)
        log_probs = torch.log_softmax(logits[row, end - request.scored:end], dim=-1)
        targets = torch.tensor(request.targets, device=log_probs.device)
        sums.append(float(log_probs.gather(1, targets[:, None]).sum()))
    return sums


def _metrics(task: Task, number: int, every: list[Request], likelihoods: np.ndarray) -> dict[str, float]:
    """The task's measures from the log-likelihood of every request (`every`, of all tasks)."""
    sums = np.full((len(task.items), max(len(item.choices) for item in task.items)), -np.inf)
    for request, likelihood in zip(every, likelihoods, strict=True):
        if request.task == number:
            sums[request.item, request.choice] = likelihood
    labels = np.array([item.label for item in task.items])
    lengths = np.array([[len(choice) for choice in item.choices] + [1] * (sums.shape[1] - len(item.choices))
                        for item in task.items], dtype=np.float64)
    acc = float(np.mean(sums.argmax(axis=1) == labels))
    acc_norm = float(np.mean((sums / lengths).argmax(axis=1) == labels))
    chance = task.chance
    return {"acc": acc, "acc_norm": acc_norm, "chance": chance, "centred": (acc - chance) / (1 - chance),
            "items": len(task.items)}


__all__ = ["Request", "encode_pair", "log_likelihoods", "requests", "score_tasks"]
