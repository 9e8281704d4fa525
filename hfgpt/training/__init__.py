"""Training a model: the three modes (`modes`), what a launch builds (`setup`), the launch from start to end
(`trainer`), the optimizer steps (`loop`) and the rules after each step (`stopping`), and their parts: the
loss (`criterion`), the optimizer and schedule (`optim`; `muon` for --optimizer muon), metrics, validation,
and trackers.

May import everything below it: the ground floor, config, data, runs, launch and inference.
"""
