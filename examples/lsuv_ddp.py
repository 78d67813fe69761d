"""LSUV initialisation of a model trained with DistributedDataParallel: every rank ends with the same weights.

    torchrun --nproc_per_node 2 examples/lsuv_ddp.py

Each rank takes its own shard of the digits data set (the 8x8 images that ship with scikit-learn), initialises the
DDP-wrapped model with `lsuv_init` on its shard's first batch, and trains a few steps. `lsuv_init` sees that
`torch.distributed` is initialised and pools the layers' output statistics over all ranks, so the weights are
those one process would get on all the ranks' batches at once, and every rank prints the same checksum.
gloo on CPU; NCCL when there is a GPU per rank.
"""
import copy, hashlib, os
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from sklearn.datasets import load_digits
from mylib.layers import lsuv_init

def checksum(m:nn.Module)->str:
    "First 12 hex digits of the SHA-1 of all of `m`'s parameters' bytes: equal only if every bit is."
    h = hashlib.sha1()
    for p in m.parameters(): h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:12]

def main(bs:int=64, steps:int=30):
    cuda = torch.cuda.is_available()
    dist.init_process_group('nccl' if cuda else 'gloo') # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0))) if cuda else torch.device('cpu')
    if cuda: torch.cuda.set_device(dev)
    # one write per line (newline included), so that the two ranks' lines cannot interleave even with unbuffered output
    say = lambda stage, m: print(f'rank {rank}: {stage:<22} params sha1={checksum(m)}\n', end='', flush=True)
    torch.manual_seed(rank) # a different seed on each rank, on purpose: nothing below relies on the ranks' RNGs agreeing

    x,y = load_digits(return_X_y=True)
    x,y = torch.tensor(x/16, dtype=torch.float32)[rank::world].to(dev), torch.tensor(y)[rank::world].to(dev) # this rank's shard

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).to(dev)
    model = DDP(model, device_ids=[dev] if cuda else None) # copies rank 0's weights to every rank, once, here

    # What goes wrong without the sync: each rank draws its own pre-init and rescales it on its own batch.
    say('sync=False (per rank)', lsuv_init(copy.deepcopy(model.module), x[:bs], sync=False))

    # The init: statistics (count, sum, sum of squares per output unit) all-reduced over the ranks, orthogonal
    # pre-init and final weights broadcast from rank 0. It runs on `model.module`, after the DDP wrap.
    lsuv_init(model, x[:bs])
    say('after lsuv_init', model)

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        i = torch.randint(len(x), (bs,), device=dev)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad(); loss.backward(); opt.step() # DDP averages the gradients, so the ranks stay equal
        if rank == 0 and step in (0, steps-1): print(f'step {step:2}: loss {loss.item():.3f}', flush=True)
    say('after training', model)
    dist.destroy_process_group()

if __name__ == '__main__': main()
