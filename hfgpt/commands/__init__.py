"""The `hfgpt` commands, one module each: `train` (also `continue` and `fork`, which share its flags),
`generate`, `evaluate` (`hfgpt eval`), `plot`, `runs` and `push`. Each exposes functions taking the command's
own arguments; `hfgpt.cli` picks one by name.

A command may import anything of hfgpt; nothing imports a command. Heavy imports (torch, transformers) wait
until after argument parsing, so that `--help` stays instant.
"""
