"""Train a GPT from raw text: `accelerate launch recipes/train.py [train|continue RUN|fork SOURCE] [flags]`.

A thin entry for accelerate's launcher (and torchrun, mpirun, srun); without a mode it trains a new
run. `hfgpt train --help` lists every flag.
"""

import sys

from hfgpt.cli import end_process, main

if __name__ == "__main__":
    args = sys.argv[1:]
    end_process(main(args if args and not args[0].startswith("-") else ["train", *args]))
