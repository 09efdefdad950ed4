"""A small PyTorch training script run by seedgrid as `kind: command` (spec: sweep.yaml).

Trains a two-layer MLP on a synthetic two-spirals problem on the CPU for a few seconds. It is
an ordinary script: it reads its learning rate and seed from the command line, and talks to
seedgrid through its Python helper (python/seedgrid, docs/python.md), which writes the files
of docs/command.md:

  seedgrid.log(name, value, step)  a curve point (metrics.jsonl): curves in the report
  seedgrid.log(name, value)        a final number (metrics.json): one registry metric each
  seedgrid.save(name, array)       an array (arrays.h5): copied into the shard's HDF5
  seedgrid.checkpoint_dir()        kept across attempts: a preempted or retried run resumes
  seedgrid.preempted()             SIGTERM arrived (preemption, timeout): checkpoint and stop

The helper is imported from this checkout (no install step); with `pip install ./python` the
sys.path line is not needed. Run alone (outside seedgrid) it writes under ./seedgrid-local.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import seedgrid  # noqa: E402  (after the sys.path line)

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--hidden", type=int, default=32)
args = parser.parse_args()

seedgrid.local("seedgrid-local")  # outside seedgrid only: files under ./seedgrid-local
seedgrid.handle_preemption()        # SIGTERM sets seedgrid.preempted() instead of killing us
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
ckpt = seedgrid.checkpoint_dir() / "state.pt"
start = 0
if ckpt.exists():
    state = torch.load(ckpt)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    start = state["step"]


def save_checkpoint(step):  # written whole, then renamed: a kill never leaves half a file
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
    os.replace(tmp, ckpt)


for step in range(start, args.steps):
    if seedgrid.preempted():  # save where we are; the next attempt resumes from here
        save_checkpoint(step)
        seedgrid.exit_preempted()
    idx = torch.randint(0, len(x_train), (128,))
    loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 10 == 0:
        seedgrid.log("loss", loss.item(), step=step)
    if (step + 1) % 100 == 0:
        save_checkpoint(step + 1)

with torch.no_grad():
    acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    train_loss = torch.nn.functional.cross_entropy(model(x_train), y_train).item()
seedgrid.log("test_acc", acc)
seedgrid.log("train_loss", train_loss)
seedgrid.log("resumed_at", start)
for name, p in model.state_dict().items():
    seedgrid.save(f"weights/{name.replace('.', '_')}", p.numpy())
print(f"lr={args.lr} seed={args.seed}: test accuracy {acc:.3f}")
