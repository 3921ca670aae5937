"""Run by torchrun in test_sft.py: train, then write this rank's weight checksum."""

import hashlib
import json
import os
import sys

import torch

from s1.training import load_recipe, train

result = train(load_recipe("cpu-smoke", sys.argv[1:]))
digest = hashlib.sha256()
for name, tensor in sorted(result.model.state_dict().items()):
    digest.update(name.encode())
    digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
rank = int(os.environ["RANK"])
with open(os.path.join(result.output_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"rank": rank, "world_size": int(os.environ["WORLD_SIZE"]),
               "backend": torch.distributed.get_backend() if torch.distributed.is_initialized()
               else None, "step": result.global_step, "sha256": digest.hexdigest()}, f)
