"""Data-parallel training under torchrun, with PyTorch's own torch.distributed (gloo on a CPU,
nccl on CUDA). A plain `python train.py` is one process, and every method here is then a no-op.

    torchrun --nproc_per_node 2 train.py --batch-size 64      # two processes, 32 rows each

    ddp = Distributed.start(device, seed)    # reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    net = ddp.wrap(model)                    # DistributedDataParallel: gradients averaged over ranks
    x, y = ddp.rows(x), ddp.rows(y)          # this rank's rows of the combined batch
    if ddp.main: ...                         # validation, logging, checkpoints: rank 0 only
                                             # (the other ranks' stdout goes to os.devnull)
    done = ddp.agree(done)                   # one decision for all ranks (budget, Ctrl-C)
    with ddp.own_rng():                      # this rank's own dropout masks
        _, loss = net(x, y)
    save.ranks = ddp.gather_rng()            # at a checkpoint (every rank): each rank's own stream
    ddp.resume_rng(save.ranks)               # after save.resume() (utils/checkpoint.py RunSaver)

Every rank draws the same combined batch (the same seed) and keeps its own B / N rows: rank r's
windows, or recurrent streams, are rows r B/N .. (r+1) B/N - 1, each rank carrying the state of its
own streams. With equal shards, the mean of the ranks' mean losses is the combined batch's mean
loss, so N processes take the same steps as one process with the whole batch (up to the order
of floating-point sums). What this does not do: split a model over devices (no model or pipeline
parallelism), or give each rank different data beyond its rows.

Random numbers: two streams per rank. The run's generator (seeded with --seed, the same on every
rank) is the *shared* stream: it draws the combined batch, so that every rank cuts the same batch.
Dropout must not be shared (every rank would drop the same units of its rows), so the forward runs
inside `with ddp.own_rng():`, which swaps in this rank's *own* stream (seeded with --seed + 1 +
rank) and swaps it out again after. For --resume, rank 0's checkpoint holds the shared stream (as
in one process) and, gathered with `gather_rng()`, every rank's own stream (resume["ranks"]);
`resume_rng()` gives each rank its own back, so a run resumed on as many processes repeats the
uninterrupted one exactly, dropout included. On another number of processes (or from a
one-process checkpoint) the own streams start afresh, with a note. In one process all this is a
no-op: `python train.py` draws its batches and dropout from one generator, as before.
Why two streams rather than one seeded per rank: the batches must agree across ranks, and a
separate batch generator would change what a one-process run draws. With dropout, N processes
do not repeat one process exactly (their masks are other draws); without it they do.
"""
import os
import sys
from contextlib import contextmanager

import torch
import torch.distributed as dist

from utils.errors import UserError


def under_torchrun():
    """Whether this process is one of several that torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Distributed:
    def __init__(self, rank=0, world=1, process_group=False, device=None, seed=0):
        self.rank, self.world, self.process_group, self.device = rank, world, process_group, device
        self.own = None                     # this rank's own random numbers (dropout), when world > 1
        if world > 1:
            with torch.random.fork_rng(devices=self._cuda()):
                torch.manual_seed(seed + 1 + rank)
                self.own = self._rng()

    @classmethod
    def start(cls, device, seed=0):
        """One process, or (under torchrun) this rank of WORLD_SIZE, its process group joined;
        `seed` (--seed) seeds this rank's own stream (see the module docstring)."""
        if not under_torchrun():
            return cls()
        world = int(os.environ["WORLD_SIZE"])
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        if dist.get_rank() != 0:
            sys.stdout = open(os.devnull, "w")        # rank 0 prints the run; errors still reach stderr
        return cls(dist.get_rank(), world, True, device, seed)

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

    # ------------------------------------------------------------ random numbers

    def _cuda(self):
        return [self.device] if self.device is not None and self.device.type == "cuda" else []

    def _rng(self):
        state = {"cpu": torch.get_rng_state()}
        for d in self._cuda():
            state["cuda"] = torch.cuda.get_rng_state(d)
        return state

    def _set_rng(self, state):
        torch.set_rng_state(state["cpu"])
        for d in self._cuda():
            if "cuda" in state:
                torch.cuda.set_rng_state(state["cuda"], d)

    @contextmanager
    def own_rng(self):
        """Inside: this rank's own random numbers (dropout); outside: the stream all ranks share (batches)."""
        if self.world == 1:
            yield
            return
        shared = self._rng()
        self._set_rng(self.own)
        try:
            yield
        finally:
            self.own = self._rng()
            self._set_rng(shared)

    def gather_rng(self):
        """Every rank's own stream, in rank order, for rank 0's checkpoint (None in one process)."""
        if self.world == 1:
            return None
        states = [None] * self.world
        dist.all_gather_object(states, self.own)
        return states

    def resume_rng(self, saved):
        """This rank's own stream back from a checkpoint's `gather_rng()` (RunSaver.ranks)."""
        if self.world == 1:
            return
        if saved is not None and len(saved) == self.world:
            self.own = saved[self.rank]
        elif self.main:
            had = "one process" if saved is None else f"{len(saved)} processes"
            print(f"note: the checkpoint was written by {had}: the {self.world} ranks' dropout streams start "
                  f"afresh, so the run will not repeat the uninterrupted one exactly")

    def close(self):
        """Every rank leaves together: a barrier, then the process group goes. Before the barrier,
        rank 1 tore gloo down while rank 0 was still validating and saving. That is our guess at an
        abort seen once in 18 torchrun test runs ("terminate called without an active exception",
        the message of PyTorch issue #190489); the barrier is not proven to cure it."""
        if self.process_group:
            dist.barrier()
            dist.destroy_process_group()
