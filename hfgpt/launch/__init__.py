"""How a launch runs on the hardware: the device, precision, threads and process group, DeepSpeed's plumbing
(`processes`), the environments of mpirun and srun (`launchers`), and the per-device memory estimate
(`memory`).

May import the ground floor, `hfgpt.config` and `hfgpt.data`.
"""
