"""A small PyTorch training script run by seedgrid as `kind: command` (spec: sweep.yaml).

Trains a two-layer MLP on a synthetic two-spirals problem on the CPU for a few seconds. It is
an ordinary script: it reads its learning rate and seed from the command line, and talks to
seedgrid only through the files of docs/command.md:

  $SEEDGRID_OUT/metrics.jsonl      one {"name", "value", "step"} per line: curves in the report
  $SEEDGRID_OUT/metrics.json       the final numbers: one registry metric each
  $SEEDGRID_OUT/weights.h5         arrays: copied into the shard's HDF5 (results.h5, `show`)
  $SEEDGRID_CHECKPOINT_DIR/        kept across attempts: a preempted or retried run resumes

Run alone (outside seedgrid) it writes to ./out and ./checkpoint instead.
"""
import argparse
import json
import os

import h5py
import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--hidden", type=int, default=32)
args = parser.parse_args()

out = os.environ.get("SEEDGRID_OUT", "out")
ckpt_dir = os.environ.get("SEEDGRID_CHECKPOINT_DIR", "checkpoint")
os.makedirs(out, exist_ok=True)
os.makedirs(ckpt_dir, exist_ok=True)
torch.manual_seed(args.seed)
torch.set_num_threads(1)


def spirals(n, gen):
    t = torch.rand(n, generator=gen) * 3 * np.pi + 0.5
    label = torch.randint(0, 2, (n,), generator=gen)
    sign = 1 - 2 * label.float()
    x = torch.stack([sign * t * torch.cos(t), sign * t * torch.sin(t)], dim=1) / 10
    return x + 0.02 * torch.randn(n, 2, generator=gen), label


gen = torch.Generator().manual_seed(1234)  # the same data for every seed and lr
x_train, y_train = spirals(2000, gen)
x_test, y_test = spirals(1000, gen)
model = torch.nn.Sequential(torch.nn.Linear(2, args.hidden), torch.nn.Tanh(),
                            torch.nn.Linear(args.hidden, args.hidden), torch.nn.Tanh(),
                            torch.nn.Linear(args.hidden, 2))
opt = torch.optim.Adam(model.parameters(), lr=args.lr)

# Resume from the checkpoint of an earlier attempt of this shard, if there is one.
ckpt = os.path.join(ckpt_dir, "state.pt")
start = 0
if os.path.exists(ckpt):
    state = torch.load(ckpt)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    start = state["step"]

log = open(os.path.join(out, "metrics.jsonl"), "a")
for step in range(start, args.steps):
    idx = torch.randint(0, len(x_train), (128,))
    loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 10 == 0:
        log.write(json.dumps({"name": "loss", "value": loss.item(), "step": step}) + "\n")
    if (step + 1) % 100 == 0:  # written whole, then renamed: a kill never leaves half a file
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1},
                   ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
log.close()

with torch.no_grad():
    acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    train_loss = torch.nn.functional.cross_entropy(model(x_train), y_train).item()
json.dump({"test_acc": acc, "train_loss": train_loss, "resumed_at": start},
          open(os.path.join(out, "metrics.json"), "w"))
with h5py.File(os.path.join(out, "weights.h5"), "w") as f:
    for name, p in model.state_dict().items():
        f[name.replace(".", "_")] = p.numpy()
print(f"lr={args.lr} seed={args.seed}: test accuracy {acc:.3f}")
