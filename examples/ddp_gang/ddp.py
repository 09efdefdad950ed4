"""An unchanged torch.distributed (DDP) script, run by seedgrid on two worker ranks as a gang
(spec: gang.yaml). seedgrid sets what torchrun would: RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Only rank 0's $SEEDGRID_OUT is published."""
import json
import os

import torch
import torch.distributed as dist

backend = "nccl" if torch.cuda.is_available() else "gloo"
dist.init_process_group(backend)  # env:// rendezvous: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if backend == "nccl" else "cpu")
torch.manual_seed(int(os.environ.get("SEEDGRID_SEED", "0")))

model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1).to(device))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
gen = torch.Generator().manual_seed(rank)  # each rank its own data shard
log = []
for step in range(50):
    x = torch.randn(64, 8, generator=gen).to(device)
    y = x.sum(dim=1, keepdim=True)
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()  # DDP all-reduces the gradients here
    opt.step()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    mean /= world
    log.append({"name": "loss", "value": mean.item(), "step": step})

if rank == 0:
    out = os.environ["SEEDGRID_OUT"]
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in log)
    json.dump({"final_loss": log[-1]["value"], "world_size": world},
              open(os.path.join(out, "metrics.json"), "w"))
dist.destroy_process_group()
