"""From raw text to the blocks a step reads: finding and checking the text (`sources`, `corpus`, nanoGPT
`shards` and their `shard_meta`), the tokenizers (`tokenization`), tokenizing and packing into cached,
memory-mapped Arrow (`packing`, `prepare`), and which blocks each step reads (`batches`).

May import the ground floor and `hfgpt.config`; nothing about runs, processes or training.
"""
