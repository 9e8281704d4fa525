"""The model architectures hfgpt trains, each a folder laid out as a transformers model folder.

A model folder imports nothing of hfgpt outside itself (single-dot relative imports only), because its files
are copied into every saved model folder for `trust_remote_code=True` users who never installed hfgpt.
"""
