"""Data-parallel training under torchrun, with PyTorch's own torch.distributed (gloo on a CPU,
nccl on CUDA). A plain `python train.py` is one process, and every method here is then a no-op.

    torchrun --nproc_per_node 2 train.py --batch-size 64      # two processes, 32 rows each

    ddp = Distributed.start(device)          # reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    net = ddp.wrap(model)                    # DistributedDataParallel: gradients averaged over ranks
    x, y = ddp.rows(x), ddp.rows(y)          # this rank's rows of the combined batch
    if ddp.main: ...                         # validation, logging, checkpoints: rank 0 only
    done = ddp.agree(done)                   # one decision for all ranks (budget, Ctrl-C)

Every rank draws the same combined batch (the same seed) and keeps its own B / N rows: rank r's
windows, or recurrent streams, are rows r B/N .. (r+1) B/N - 1, each rank carrying the state of its
own streams. With equal shards, the mean of the ranks' mean losses is the combined batch's mean
loss, so N processes take the same steps as one process with the whole batch (up to the order
of floating-point sums). What this does not do: split a model over devices (no model or pipeline
parallelism), or give each rank different data beyond its rows.
"""
import os

import torch
import torch.distributed as dist

from utils.errors import UserError


class Distributed:
    def __init__(self, rank=0, world=1, process_group=False, device=None):
        self.rank, self.world, self.process_group, self.device = rank, world, process_group, device

    @classmethod
    def start(cls, device):
        """One process, or (under torchrun) this rank of WORLD_SIZE, its process group joined."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        return cls(dist.get_rank(), world, True, device)

    @property
    def main(self):
        return self.rank == 0

    def check_batch(self, batch_size):
        if batch_size % self.world:
            raise UserError(f"--batch-size {batch_size} does not split into {self.world} processes: "
                            f"give a multiple of {self.world}")

    def rows(self, t):
        """This rank's rows of a combined batch (dimension 0)."""
        if self.world == 1:
            return t
        n = t.shape[0] // self.world
        return t[self.rank * n:(self.rank + 1) * n]

    def state_rows(self, state):
        """This rank's rows of a recurrent state: a tensor, or lists and tuples of them."""
        if torch.is_tensor(state):
            return self.rows(state)
        if isinstance(state, (list, tuple)):
            return type(state)(self.state_rows(s) for s in state)
        return state

    def wrap(self, model):
        """DistributedDataParallel around `model` (the model itself in one process)."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model)

    def agree(self, flag):
        """True on every rank if it is true on any: stop together (a budget spent, a Ctrl-C)."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def share(self, value):
        """Rank 0's number on every rank (a learning rate that rank 0's validation changed)."""
        if self.world == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return t.item()

    def gather_state(self, state):
        """The combined batch's recurrent state, every rank's rows in order (for a checkpoint, which
        resumes on any number of processes); `state_rows` takes a rank's rows back out of it."""
        if self.world == 1 or state is None:
            return state
        if torch.is_tensor(state):
            parts = [torch.empty_like(state) for _ in range(self.world)]
            dist.all_gather(parts, state.contiguous())
            return torch.cat(parts)
        return type(state)(self.gather_state(s) for s in state)

    def close(self):
        if self.process_group:
            dist.destroy_process_group()
