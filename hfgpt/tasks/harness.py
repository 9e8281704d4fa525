"""lm-evaluation-harness, the field's reference, for the tasks it defines (`hellaswag`, `arc_easy`, `piqa`, ... or a
folder of the user's own task YAML files): their items for hfgpt's scorer in the training loop, and lm-eval's own
`simple_evaluate` on a saved model for `hfgpt eval --tasks`. It is an optional dependency (`pip install -e
".[eval]"`); a local JSONL task needs none of it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import HfGptError
from .items import Item, Task

INSTALL = 'pip install -e ".[eval]"'


def lm_eval() -> ModuleType:
    """The lm_eval module, or a sentence saying how to install it."""
    try:
        import lm_eval as module
    except ImportError as error:
        raise HfGptError(f"Tasks named by lm-evaluation-harness need it installed, and it is not ({error}): "
                         f"{INSTALL}. A local .jsonl task needs nothing more.") from None
    return module


def task_manager(task_dir: str = "") -> Any:
    lm_eval()
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(Path(task_dir).expanduser()) if task_dir else None)


def check_known(names: list[str], task_dir: str = "") -> None:
    """Refuse a task that lm-evaluation-harness does not know, before any training."""
    known = set(task_manager(task_dir).all_tasks)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise HfGptError(f"lm-evaluation-harness knows no task {unknown[0]!r} (a local task is a path ending in "
                         ".jsonl). `lm-eval ls tasks` lists its tasks; --task-dir adds a folder of your own YAML "
                         "tasks.")


def harness_task(name: str, limit: int = 0, task_dir: str = "") -> Task:
    """A multiple-choice task of lm-evaluation-harness as items (its 0-shot contexts, choices, targets and target
    delimiter), the first `limit` of them when given. Its documents are downloaded once, as lm-eval does."""
    task = _load(name, task_dir)
    if task is None or getattr(task, "OUTPUT_TYPE", "") != "multiple_choice":
        raise HfGptError(f"{name!r} is not a multiple-choice task of lm-evaluation-harness (a group, or a task that "
                         "generates text); hfgpt scores multiple-choice tasks in the loop. Name its tasks one by one, "
                         "or use lm-eval itself.")
    task.build_all_requests(limit=limit or None, rank=0, world_size=1)
    contexts: dict[int, str] = {}
    for instance in task.instances:
        contexts.setdefault(instance.doc_id, instance.arguments[0])
    items = []
    for doc_id, doc in enumerate(task.eval_docs):
        if doc_id not in contexts:
            continue
        choices, target = list(task.doc_to_choice(doc)), task.doc_to_target(doc)
        label = choices.index(target) if isinstance(target, str) else int(target)
        items.append(Item(contexts[doc_id], tuple(choices), label, task.config.target_delimiter))
    return Task(name, tuple(items), "lm-evaluation-harness")


def _load(name: str, task_dir: str) -> Any:
    """lm-eval's task object by name (None for a group): `TaskManager.load` where lm-eval has it (newer releases
    deprecate `get_task_dict`), else `get_task_dict`."""
    manager = task_manager(task_dir)
    if hasattr(manager, "load"):
        return manager.load(name)["tasks"].get(name)
    from lm_eval.tasks import get_task_dict

    return get_task_dict([name], manager).get(name)


def harness_results(model: Any, tokenizer: Any, names: list[str], batch_size: int, limit: int = 0,
                    task_dir: str = "") -> dict[str, dict[str, float]]:
    """lm-eval's own evaluation of `model`: acc and acc_norm of each task, as lm-eval reports them."""
    from lm_eval.models.huggingface import HFLM

    evaluator = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                     max_length=model.config.max_position_embeddings)
    output = lm_eval().simple_evaluate(model=evaluator, tasks=names, task_manager=task_manager(task_dir),
                                       limit=limit or None, log_samples=True)
    found = {}
    for name in names:
        metrics, samples = output["results"][name], output["samples"][name]
        chance = sum(1 / len(sample["arguments"]) for sample in samples) / len(samples)
        acc = metrics["acc,none"]
        found[name] = {"acc": acc, "acc_norm": metrics.get("acc_norm,none", float("nan")), "chance": chance,
                       "centred": (acc - chance) / (1 - chance), "items": len(samples)}
    return found


__all__ = ["check_known", "harness_results", "harness_task", "lm_eval"]
