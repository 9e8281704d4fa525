"""From raw text to the blocks a step reads: finding and checking the text (`sources`, `checks`, `corpus`,
nanoGPT `shards` and their `shard_meta`), the tokenizers (`tokenization`), reading a text of any size in
pieces that tokenize as the whole (`chunking`, `reading`), tokenizing in parallel (`encoding`, `texts`),
packing into cached, sharded, memory-mapped Arrow (`packing`, `prepare`, `prepared`), streaming instead of
packing (`streams`, `streaming`, `stream_batches`), and which blocks each step reads (`batches`, `feed`).

May import the ground floor and `hfgpt.config`; nothing about runs, processes or training.
"""
