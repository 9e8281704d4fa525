"""Downstream tasks: multiple-choice items (a local JSONL file, or a task lm-evaluation-harness defines) scored by
log-likelihood exactly as lm-evaluation-harness scores them (`items`, `scoring`, `harness`). Training scores them in
the loop, `hfgpt eval --tasks` on a saved model.

May import the ground floor and config; training and commands import it.
"""
