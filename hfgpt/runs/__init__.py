"""A run on disk: its directory and lock (`rundir`), its record (`runinfo`), its logs (`logbook`), its
verified checkpoints (`checkpoint`, `manifest`) with the state they carry (`state`), what `continue` restores
(`resume`), the final/ and best/ model folders (`model_folders`), and finding a trained model to use
(`saved_models`). hfgpt writes, renames and deletes only what it made here.

May import the ground floor, `hfgpt.config`, `hfgpt.data` and the model; never the training loop.
"""
