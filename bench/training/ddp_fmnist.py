#!/usr/bin/env python3
"""PyTorch DDP (gloo, CPU) baseline for the EMC training comparison: Fashion-MNIST, EMC's zoo models.

Every rank is its own process. The rank, world size and rendezvous come from the environment, as
torchrun sets them: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Two ways to rendezvous:

* default: rank 0 hosts the TCP store (init_method env://);
* --external-store: a separate ``ddp_fmnist.py --serve-store`` process hosts it (run.sh puts it in
  the hub namespace, like the EMC coordinator, so that every training rank sits behind a capped link).

``--nproc N`` is a convenience for loopback: it starts N rank processes of this script itself on
127.0.0.1 and waits for them.

The model is EMC's (docs/zoo/emc_zoo.py), trained with AdamW (lr 1e-3, weight decay 0.01, EMC's
DiLoCo inner optimizer) on per-rank batches of B examples from disjoint DistributedSampler-style
shards (a fresh seeded permutation per epoch, rank r takes every N-th index from r). The model is
evaluated on all 10,000 test images every K steps (by rank 0, or with --eval-mode shared split over
the ranks as EMC splits it over a round's nodes); every rank stops once the accuracy reaches
--target, or after --max-epochs / --max-steps / --time-cap.

Output (rank 0, stdout): one JSON line per evaluation
  {"step", "samples", "seconds", "trainLoss", "evalAccuracy", "evalLoss", "samplesPerSecond"}
and a final JSON line {"final": true, ...} with seconds_to_target (null when not reached),
samples/s, steps, per-rank bytes (tx/rx of --iface, when given) and peak RSS, and the analytic
all-reduce volume per rank = steps x 2(N-1)/N x 4 bytes x parameters.
"""

import argparse
import datetime
import gzip
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = os.path.normpath(os.path.join(HERE, "..", "..", "docs", "zoo"))
sys.path.insert(0, ZOO)
import emc_zoo  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    p.add_argument("--batch-size", type=int, default=64, help="examples per step on every rank (B)")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads per rank")
    p.add_argument("--eval-every", type=int, default=50, help="evaluate on all 10,000 test images every K steps")
    p.add_argument("--eval-mode", default="rank0", choices=["rank0", "shared"],
                   help="rank0: rank 0 evaluates everything while the others wait; shared: rank r evaluates its 1/N of "
                        "the test images and the counts are summed (how EMC splits evaluation over a round's nodes)")
    p.add_argument("--target", type=float, default=0.88, help="stop when the test accuracy reaches this")
    p.add_argument("--max-epochs", type=float, default=10.0)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    p.add_argument("--time-cap", type=float, default=0.0, help="stop after this many seconds of training (0: no limit)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", default=DATA_DIR)
    p.add_argument("--iface", default=None, help="network interface whose tx/rx bytes are this rank's traffic (veth0 in a worker namespace)")
    p.add_argument("--external-store", action="store_true", help="the TCP store runs in a --serve-store process at MASTER_ADDR:MASTER_PORT")
    p.add_argument("--serve-store", action="store_true", help="host the TCP store for WORLD_SIZE ranks and exit once they have all finished")
    p.add_argument("--nproc", type=int, default=0, help="start this many local rank processes on 127.0.0.1 and wait for them")
    p.add_argument("--port", type=int, default=29511, help="MASTER_PORT with --nproc")
    p.add_argument("--summary", default=None, help="also write the final JSON summary to this file (rank 0)")
    return p.parse_args(argv)


# ---------------------------------------------------------------- data

def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(directory, prefix):
    images = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"))
    # What the EMC nodes feed: float32 pixels / 255 shaped [B, H, W].
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def shard_indices(n, world, rank, epoch, seed):
    """DistributedSampler(shuffle=True, drop_last=True): one permutation per epoch, rank r takes r, r+N, ..."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world
    return perm[: per_rank * world][rank::world]


# ---------------------------------------------------------------- measurements

def iface_bytes(iface):
    if not iface:
        return None
    base = f"/sys/class/net/{iface}/statistics"
    with open(f"{base}/tx_bytes") as t, open(f"{base}/rx_bytes") as r:
        return int(t.read()), int(r.read())


def peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # ru_maxrss is KiB on Linux


@torch.no_grad()
def evaluate(model, images, labels, batch=500):
    """(correct, loss sum) over the images."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for i in range(0, images.shape[0], batch):
        out = model(images[i: i + batch])
        loss_sum += F.cross_entropy(out, labels[i: i + batch], reduction="sum").item()
        correct += (out.argmax(1) == labels[i: i + batch]).sum().item()
    model.train()
    return correct, loss_sum


def emit(obj, summary=None):
    line = json.dumps(obj)
    print(line, flush=True)
    if summary:
        with open(summary, "w") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------- modes

def serve_store():
    host, port, world = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WORLD_SIZE"])
    store = dist.TCPStore(host, port, world, True, timeout=datetime.timedelta(hours=2), wait_for_workers=False)
    print(json.dumps({"store": f"{host}:{port}", "world_size": world}), flush=True)
    while store.add("finished", 0) < world:
        time.sleep(0.5)


def launch_local(args, argv):
    """--nproc N: N rank processes of this script on loopback (gloo over lo)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--nproc", "--port"):
            skip = True
            continue
        if a.startswith("--nproc=") or a.startswith("--port="):
            continue
        rest.append(a)
    procs = []
    for rank in range(args.nproc):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(args.nproc), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(args.port), GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__)] + rest, env=env))
    codes = [p.wait() for p in procs]
    return max(codes, key=abs)


def train(args):
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(args.threads)
    timeout = datetime.timedelta(minutes=30)
    if args.external_store:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, False, timeout=timeout)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timeout)
    else:
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world, timeout=timeout)
        store = None

    train_x, train_y = load_split(args.data_dir, "train")
    test_x, test_y = load_split(args.data_dir, "t10k")
    test_count = test_x.shape[0]
    if args.eval_mode == "shared":
        lo, hi = test_count * rank // world, test_count * (rank + 1) // world
        test_x, test_y = test_x[lo:hi], test_y[lo:hi]
    elif rank != 0:
        test_x, test_y = None, None

    torch.manual_seed(args.seed)
    spec = {"name": args.model, "sampleShape": [28, 28], "classes": 10}
    model = emc_zoo.build(spec)
    parameters = sum(p.numel() for p in model.parameters())
    ddp = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(ddp.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    torch.manual_seed(args.seed * 1000 + rank)  # dropout differs per rank

    steps_per_epoch = train_x.shape[0] // world // args.batch_size
    max_steps = int(args.max_epochs * steps_per_epoch)
    if args.max_steps > 0:
        max_steps = min(max_steps, args.max_steps)

    dist.barrier()
    bytes0 = iface_bytes(args.iface)
    t0 = time.time()
    step, epoch = 0, 0
    eval_seconds, seconds_to_target, accuracy, eval_loss = 0.0, None, None, None
    losses = []
    stop = torch.zeros(1, dtype=torch.int32)
    while step < max_steps and not stop.item():
        idx = shard_indices(train_x.shape[0], world, rank, epoch, args.seed)
        for b in range(steps_per_epoch):
            batch = idx[b * args.batch_size: (b + 1) * args.batch_size]
            out = ddp(train_x[batch])
            loss = F.cross_entropy(out, train_y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # the gradient all-reduce
            opt.step()
            step += 1
            losses.append(loss.item())
            last = step >= max_steps
            if step % args.eval_every == 0 or last:
                te = time.time()
                if args.eval_mode == "shared":
                    correct, loss_sum = evaluate(model, test_x, test_y)
                    totals = torch.tensor([correct, loss_sum], dtype=torch.float64)
                    dist.all_reduce(totals)
                    accuracy, eval_loss = totals[0].item() / test_count, totals[1].item() / test_count
                elif rank == 0:
                    correct, loss_sum = evaluate(model, test_x, test_y)
                    accuracy, eval_loss = correct / test_count, loss_sum / test_count
                if rank == 0:
                    eval_seconds += time.time() - te
                    seconds = time.time() - t0
                    if seconds_to_target is None and accuracy >= args.target:
                        seconds_to_target = seconds
                    emit({"step": step, "samples": step * world * args.batch_size, "seconds": round(seconds, 3),
                          "trainLoss": round(float(np.mean(losses)), 5), "evalAccuracy": accuracy,
                          "evalLoss": round(eval_loss, 5),
                          "samplesPerSecond": round(step * world * args.batch_size / seconds, 1)})
                    losses = []
                    capped = args.time_cap > 0 and seconds >= args.time_cap
                    stop[0] = 1 if (seconds_to_target is not None or capped) else 0
                dist.broadcast(stop, 0)
            if stop.item() or last:
                break
        epoch += 1

    seconds = time.time() - t0
    bytes1 = iface_bytes(args.iface)
    mine = {"rank": rank, "iface": args.iface, "peak_rss_mib": peak_rss_mib(), "pid": os.getpid(),
            "tx_bytes": None if bytes0 is None else bytes1[0] - bytes0[0],
            "rx_bytes": None if bytes0 is None else bytes1[1] - bytes0[1]}
    ranks = [None] * world
    dist.all_gather_object(ranks, mine)
    if rank == 0:
        samples = step * world * args.batch_size
        emit({"final": True, "system": "ddp", "model": args.model, "world_size": world, "parameters": parameters,
              "optimizer": args.optimizer, "lr": args.lr, "eval_mode": args.eval_mode, "batch_size": args.batch_size, "threads": args.threads,
              "target": args.target, "reached": seconds_to_target is not None,
              "seconds_to_target": None if seconds_to_target is None else round(seconds_to_target, 3),
              "seconds": round(seconds, 3), "eval_seconds": round(eval_seconds, 3),
              "steps": step, "epochs": round(step / steps_per_epoch, 3), "samples": samples,
              "samples_per_second": round(samples / seconds, 1),
              "samples_per_second_excluding_eval": round(samples / max(1e-9, seconds - eval_seconds), 1),
              "eval_accuracy": accuracy, "eval_loss": eval_loss,
              "analytic_allreduce_bytes_per_rank": int(step * 2 * (world - 1) / world * 4 * parameters),
              "ranks": ranks}, args.summary)
    if store is not None:
        store.add("finished", 1)
    dist.barrier()
    dist.destroy_process_group()
    return 0


def main():
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.serve_store:
        serve_store()
        return 0
    if args.nproc > 0:
        return launch_local(args, argv)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
