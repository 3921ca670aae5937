"""Will it fit? A lower bound on GPU memory per process, checked before the first step, so a run
that cannot fit says so in its first minute instead of after loading 32B weights on 16 GPUs.

Counted: weights, gradients and optimizer state (sharded over the processes under FSDP / ZeRO-3,
none of them on the GPU with CPU offload) plus the activations gradient checkpointing keeps (one
hidden state per layer per token). Not counted: the layer being recomputed, the unsharded layer
FSDP gathers, the allocator's fragmentation; so a run flagged here surely fails, and one that
passes may still be tight. A run is flagged when that lower bound takes over 80% of the GPU: the
rest goes to the recomputed layer, FSDP's gathered layers, the optimizer step's temporaries and
the allocator.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 2 ** 30
HEADROOM = 0.8


@dataclass(frozen=True)
class MemoryPlan:
    state_gib: float         # weights + gradients + optimizer state, per process
    activations_gib: float   # checkpointed hidden states of one micro-batch
    gpu_gib: float           # what the GPU has

    @property
    def need_gib(self) -> float:
        return self.state_gib + self.activations_gib

    @property
    def fits(self) -> bool:
        return self.need_gib < HEADROOM * self.gpu_gib

    def summary(self) -> str:
        return (f"at least {self.need_gib:.0f} GiB per GPU ({self.state_gib:.0f} GiB of weights, "
                f"gradients and optimizer state + {self.activations_gib:.0f} GiB of checkpointed "
                f"activations) on {self.gpu_gib:.0f} GiB GPUs")


def optimizer_bytes(optim: str, param_bytes: int) -> float:
    """Optimizer state per trainable parameter: AdamW keeps two moments in the parameter dtype."""
    if "8bit" in optim:
        return 2.0
    if optim.startswith(("adafactor", "sgd")):
        return 0.0 if optim.startswith("sgd") else 0.1 * param_bytes
    return 2.0 * param_bytes


def plan(params: int, trainable: int, param_bytes: int, optim: str, processes: int,
         sharded: bool, offload: bool, layers: int, hidden: int, tokens: int,
         checkpointing: bool, gpu_gib: float) -> MemoryPlan:
    """`tokens`: micro_batch_size x block_size; `sharded`: FSDP or ZeRO-3 across `processes`."""
    state = params * param_bytes + trainable * (param_bytes + optimizer_bytes(optim, param_bytes))
    if offload:
        state = 0.0
    elif sharded:
        state /= processes
    # bf16 hidden states kept at each layer boundary; without checkpointing many more are kept
    activations = layers * tokens * hidden * 2 if checkpointing else 0
    return MemoryPlan(state / GiB, activations / GiB, gpu_gib)


__all__ = ["MemoryPlan", "optimizer_bytes", "plan"]
