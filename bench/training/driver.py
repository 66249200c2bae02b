#!/usr/bin/env python3
"""The side-by-side training comparison: EMC DiLoCo, EMC sync and PyTorch DDP (gloo) on Fashion-MNIST.

run.sh calls this; see README.md. For every network (loopback, then netns: every worker behind its
own 20 Mbit/s link, see netns.sh) and every setting (emc-diloco:N, emc-sync:N, ddp:N) it starts the
system from nothing, trains to --target test accuracy or --time-cap, measures, stops everything, and
finally writes results/<timestamp>.json and results/<timestamp>.md.
"""

import argparse
import datetime
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
NETNS = os.path.join(HERE, "netns.sh")
DDP = os.path.join(HERE, "ddp_fmnist.py")
PYTHON = "/usr/bin/python3"
DEFAULT_EMC = os.path.join(REPO, "src", "Emc.Cli", "bin", "Release", "net10.0", "linux-x64", "emc.dll")
DATA_DIR = "/usr/share/datasets/fashion-mnist"
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
FULL_TARGETS = {"cnn": 0.916, "mlp": 0.883}
DEFAULT_SETTINGS = "emc-diloco:2,emc-diloco:4,emc-sync:2,emc-sync:4,ddp:2,ddp:4"
MIB = 1024.0 * 1024.0


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    p.add_argument("--target", type=float, default=0.88,
                   help="test accuracy to reach (default 0.88 for quick runs; --full-target: 0.916 cnn / 0.883 mlp)")
    p.add_argument("--full-target", action="store_true", help="use the full benchmark's target for the model")
    p.add_argument("--time-cap", type=float, default=1200, help="seconds of training per setting before giving up (default 1200)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"comma-separated SYSTEM:N (default {DEFAULT_SETTINGS})")
    p.add_argument("--networks", default="loopback,netns", help="loopback, netns or both (default both, loopback first)")
    p.add_argument("--batch-size", type=int, default=64, help="examples per step per worker (B)")
    p.add_argument("--inner-steps", type=int, default=50, help="EMC DiLoCo H")
    p.add_argument("--eval-steps", type=int, default=50,
                   help="evaluate every this many (inner) steps: DiLoCo every max(1, this/H) rounds, sync every this many rounds, DDP every this many steps")
    p.add_argument("--precision", default="int8", choices=["int8", "fp32"], help="EMC update precision")
    p.add_argument("--max-epochs", type=float, default=30, help="epochs limit of every job (the time cap usually ends it first)")
    p.add_argument("--threads", type=int, default=0, help="threads per worker (0: max(1, cores / N))")
    p.add_argument("--ddp-optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--ddp-lr", type=float, default=1e-3)
    p.add_argument("--ddp-eval", default="shared", choices=["shared", "rank0"],
                   help="DDP evaluation: split over the ranks like EMC's nodes (shared) or all on rank 0")
    p.add_argument("--no-emc-warmup", action="store_true",
                   help="skip the 1-round EMC warm-up job that puts the dataset shards in the nodes' caches")
    p.add_argument("--rate", default="20mbit", help="netns link cap, each direction")
    p.add_argument("--emc", default=DEFAULT_EMC, help="the built emc.dll")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--results", default=os.path.join(HERE, "results"))
    p.add_argument("--keep-temp", action="store_true", help="keep the temporary folder (data folders and logs)")
    a = p.parse_args()
    if a.full_target:
        a.target = FULL_TARGETS[a.model]
    a.settings = [(s.split(":")[0], int(s.split(":")[1])) for s in a.settings.split(",") if s]
    for system, n in a.settings:
        if system not in ("emc-diloco", "emc-sync", "ddp") or n < 1:
            p.error(f"bad setting {system}:{n}")
    a.networks = [n for n in a.networks.split(",") if n]
    for n in a.networks:
        if n not in ("loopback", "netns"):
            p.error(f"bad network {n}")
    return a


# ---------------------------------------------------------------- processes and measurements

class Procs:
    """Every process the driver started (each in its own session), so that all can be stopped."""

    def __init__(self):
        self.items = []  # (name, Popen)
        self.peak = {}   # pid -> VmHWM MiB seen
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def start(self, name, cmd, logfile, env=None):
        with open(logfile, "ab") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.items.append((name, p))
        return p

    def _poll(self):
        while not self._stop.wait(1.0):
            for _, p in list(self.items):
                self.read_peak(p.pid)

    def read_peak(self, pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        v = int(line.split()[1]) / 1024.0
                        self.peak[pid] = max(v, self.peak.get(pid, 0.0))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
        return self.peak.get(pid)

    def stop(self, procs, grace=30):
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + grace
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()

    def stop_all(self):
        self.stop([p for _, p in reversed(self.items)], grace=15)
        self.items = []

    def close(self):
        self._stop.set()
        self.stop_all()


class Network:
    def __init__(self, kind, rate):
        self.kind, self.rate, self.workers = kind, rate, 0

    def up(self, workers):
        if self.kind == "netns":
            subprocess.run([NETNS, "up", str(workers)], check=True, env=dict(os.environ, EMCB_RATE=self.rate))
            self.workers = workers

    def down(self):
        if self.kind == "netns":
            subprocess.run([NETNS, "down"], check=False)

    def prefix(self, name):
        return [] if self.kind == "loopback" else ["ip", "netns", "exec", f"emcb-{name}"]

    def ip(self, name):
        if self.kind == "loopback":
            return "127.0.0.1"
        return "10.77.0.1" if name == "hub" else f"10.77.0.{10 + int(name[1:])}"

    def iface(self):
        return "lo" if self.kind == "loopback" else "veth0"

    def bytes(self, name):
        if self.kind == "loopback":
            return None
        out = subprocess.run([NETNS, "bytes", name], check=True, capture_output=True, text=True).stdout
        return json.loads(out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def delta(after, before, key):
    if after is None or before is None:
        return None
    return after[key] - before[key]


def line_reader(stream, q, logf):
    for raw in iter(stream.readline, b""):
        logf.write(raw)
        logf.flush()
        q.put(raw.decode("utf-8", "replace"))
    q.put(None)


# ---------------------------------------------------------------- EMC

class Emc:
    def __init__(self, args, net, procs, workdir, api_port, grpc_port):
        self.args, self.net, self.procs, self.workdir = args, net, procs, workdir
        self.host = net.ip("hub")
        self.url = f"http://{self.host}:{api_port}/"
        self.api_port, self.grpc_port = api_port, grpc_port
        self.dotnet = ["dotnet", args.emc]
        self.logs = os.path.join(workdir, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def cli(self, *argv, timeout=300):
        cmd = self.net.prefix("hub") + self.dotnet + list(argv)
        # The coordinator's operator key (written at its first start) opens its API.
        key_file = os.path.join(self.workdir, "coordinator", "operator.key")
        env = dict(os.environ, EMC_API_KEY=open(key_file).read().strip()) if os.path.exists(key_file) else None
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed ({r.returncode}): {r.stderr.strip()[:500]}")
        return r.stdout

    def ready(self):
        probe = f"import urllib.request; urllib.request.urlopen('{self.url}readyz', timeout=2)"
        return subprocess.run(self.net.prefix("hub") + [PYTHON, "-c", probe], capture_output=True).returncode == 0

    def start(self, n, threads):
        self.coordinator = self.procs.start(
            "coordinator",
            self.net.prefix("hub") + self.dotnet + ["coordinator", "--data", os.path.join(self.workdir, "coordinator"),
                                                    "--urls", f"http://{self.host}:{self.api_port}",
                                                    "--grpc-urls", f"http://{self.host}:{self.grpc_port}"],
            os.path.join(self.logs, "coordinator.log"))
        deadline = time.time() + 120
        while not self.ready():
            if self.coordinator.poll() is not None or time.time() > deadline:
                raise RuntimeError("the coordinator did not become ready")
            time.sleep(1)
        log("  coordinator ready; uploading Fashion-MNIST")
        self.cli("data", "upload", *[os.path.join(DATA_DIR, f) for f in FILES], "--name", "fashion-mnist",
                 "--format", "idx", "--coordinator", self.url)
        self.nodes = []
        for i in range(1, n + 1):
            self.nodes.append(self.procs.start(
                f"node-{i}",
                self.net.prefix(f"w{i}") + self.dotnet + ["node", "--coordinator", self.url, "--name", f"node-{i}",
                                                          "--data", os.path.join(self.workdir, "nodes", f"node-{i}"),
                                                          "--training-threads", str(threads)],
                os.path.join(self.logs, f"node-{i}.log")))
        deadline = time.time() + 180
        while True:
            listing = json.loads(self.cli("nodes", "--coordinator", self.url, "--json"))
            connected = {x["name"]: x["id"] for x in listing if x.get("status") == "connected"}
            if all(f"node-{i}" in connected for i in range(1, n + 1)):
                self.ids = {v: k for k, v in connected.items()}  # id -> name
                return
            if time.time() > deadline or any(p.poll() is not None for p in self.nodes):
                raise RuntimeError(f"not all {n} nodes connected (see {self.logs})")
            time.sleep(2)

    def submit_argv(self, algorithm, n, extra):
        return ["train", "submit", "--coordinator", self.url, "--model", self.args.model, "--dataset", "fashion-mnist",
                "--algorithm", algorithm, "--nodes", str(n), "--batch-size", str(self.args.batch_size),
                "--precision", self.args.precision, "--seed", str(self.args.seed), "--eval-max", "0"] + extra

    def warmup(self, n):
        """One short DiLoCo round, so every node has the dataset shards in its cache before the timed job."""
        self.cli(*self.submit_argv("diloco", n, ["--rounds", "1", "--inner-steps", "1", "--eval-every", "1", "--watch", "--json"]),
                 timeout=600)

    def running_job(self):
        jobs = json.loads(self.cli("train", "list", "--coordinator", self.url, "--state", "running", "--json"))
        return jobs[0]["id"] if jobs else None

    def stop(self):
        self.procs.stop(self.nodes, grace=30)
        self.procs.stop([self.coordinator], grace=30)


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def run_emc(args, net, procs, workdir, algorithm, n, threads, ports):
    emc = Emc(args, net, procs, workdir, *ports)
    rec = {"system": f"emc-{algorithm}", "algorithm": algorithm, "n": n, "threads": threads}
    try:
        emc.start(n, threads)
        if not args.no_emc_warmup:
            log("  warm-up round (dataset shards into the node caches)")
            emc.warmup(n)
        before = {f"w{i}": net.bytes(f"w{i}") for i in range(1, n + 1)}
        if algorithm == "diloco":
            extra = ["--inner-steps", str(args.inner_steps), "--eval-every", str(max(1, args.eval_steps // args.inner_steps))]
        else:
            extra = ["--eval-every", str(args.eval_steps)]
        argv = emc.submit_argv(algorithm, n, extra + ["--epochs", str(args.max_epochs), "--watch", "--json"])
        rec["command"] = "emc " + " ".join(argv)
        log(f"  training: {rec['command']}")
        watch_log = open(os.path.join(emc.logs, "watch.jsonl"), "ab")
        t_start = time.time()
        watch = subprocess.Popen(net.prefix("hub") + emc.dotnet + argv, stdout=subprocess.PIPE, stderr=watch_log, start_new_session=True)
        procs.items.append(("watch", watch))
        q = queue.Queue()
        threading.Thread(target=line_reader, args=(watch.stdout, q, watch_log), daemon=True).start()
        rounds, final_view, reached_round, stop_reason = [], None, None, None
        snapshots, last_snapshot = {}, 0.0  # round -> link counters when its line arrived (netns)
        job_id = None
        while True:
            try:
                line = q.get(timeout=1.0)
            except queue.Empty:
                line = ""
            if line is None:
                break
            line = line.strip()
            if line.startswith("{"):
                obj = json.loads(line)
                if "round" in obj and "spec" not in obj:
                    rounds.append(obj)
                    if net.kind == "netns" and (algorithm == "diloco" or time.time() - last_snapshot >= 1.0):
                        snapshots[obj["round"]] = {f"w{i}": net.bytes(f"w{i}") for i in range(1, n + 1)}
                        last_snapshot = time.time()
                    acc = obj.get("evalAccuracy")
                    if acc is not None:
                        log(f"  round {obj['round']}: eval accuracy {acc:.4f}, {sum(r['samples'] for r in rounds):,} samples")
                    if reached_round is None and acc is not None and acc >= args.target and obj["round"] > 1:
                        reached_round = obj["round"]
                elif "spec" in obj:
                    final_view = obj
            if stop_reason is None and (reached_round is not None or time.time() - t_start > args.time_cap):
                stop_reason = "target" if reached_round is not None else "time cap"
                rec["seconds_detected"] = round(time.time() - t_start, 3)
                # The measurements are taken now, before anything is stopped.
                rec["after_bytes"] = {f"w{i}": net.bytes(f"w{i}") for i in range(1, n + 1)}
                rec["node_peak_rss_mib"] = [procs.read_peak(p.pid) for p in emc.nodes]
                rec["coordinator_peak_rss_mib"] = procs.read_peak(emc.coordinator.pid)
                job_id = emc.running_job()
                if job_id:
                    try:
                        emc.cli("train", "cancel", "--coordinator", emc.url, job_id)
                    except RuntimeError as e:
                        log(f"  cancel: {e}")
                else:
                    break
            if watch.poll() is not None and q.empty():
                break
        try:
            watch.wait(60)
        except subprocess.TimeoutExpired:
            procs.stop([watch])
        if stop_reason is None:  # the job ended by itself (epochs done or failed)
            stop_reason = "job ended"
            rec["after_bytes"] = {f"w{i}": net.bytes(f"w{i}") for i in range(1, n + 1)}
            rec["node_peak_rss_mib"] = [procs.read_peak(p.pid) for p in emc.nodes]
            rec["coordinator_peak_rss_mib"] = procs.read_peak(emc.coordinator.pid)
        if final_view is None:
            final_view = json.loads(emc.cli("train", "status", "--coordinator", emc.url, job_id or "train-2", "--json"))
        rec["stop_reason"] = stop_reason
        rec["job"] = final_view.get("id")
        rec["state"] = final_view.get("state")
        created = parse_time(final_view.get("createdAt"))
        by_number = {r["round"]: r for r in rounds}
        rec["rounds"] = len(rounds)
        rec["first_round_seconds"] = rounds[0]["seconds"] if rounds else None
        rec["target"] = args.target
        rec["reached"] = reached_round is not None
        if reached_round is not None:
            # Round r evaluates the weights W(r-1) published when round r-1 closed: that is when the target was reached.
            done = by_number[reached_round - 1]
            rec["seconds_to_target"] = round(parse_time(done["at"]) - created, 3)
            rec["samples_to_target"] = sum(r["samples"] for r in rounds if r["round"] < reached_round)
            rec["upload_bytes_to_target_per_worker"] = sum(r["bytesReceived"] for r in rounds if r["round"] < reached_round) / n
            rec["eval_accuracy"] = by_number[reached_round]["evalAccuracy"]
        else:
            last = rounds[-1] if rounds else None
            rec["seconds_to_target"] = None
            rec["eval_accuracy"] = next((r["evalAccuracy"] for r in reversed(rounds) if r.get("evalAccuracy") is not None), None)
            rec["upload_bytes_to_target_per_worker"] = None
            rec["samples_to_target"] = None
            if last:
                rec["seconds_at_stop"] = round(parse_time(last["at"]) - created, 3)
        rec["samples"] = sum(r["samples"] for r in rounds)
        span = rec["seconds_to_target"] or rec.get("seconds_at_stop")
        samples = rec["samples_to_target"] if rec["reached"] else rec["samples"]
        rec["samples_per_second"] = round(samples / span, 1) if span else None
        rec["steps"] = (rec["samples_to_target"] if rec["reached"] else rec["samples"]) // (n * args.batch_size)
        nodes = final_view.get("nodes", {})
        rec["nodes"] = {emc.ids.get(k, k): {"bytes_sent": v.get("bytesSent"), "samples": v.get("samples"),
                                              "samples_per_second": v.get("samplesPerSecond")} for k, v in nodes.items()}
        rec["bytes_sent_per_worker_job_view"] = sum(v["bytes_sent"] or 0 for v in rec["nodes"].values()) / n if nodes else None
        # Link bytes up to the target: the counters read when the line of round r-1 (whose weights reached it)
        # arrived, or the latest read before it; otherwise up to the stop.
        at_target = None
        if reached_round is not None:
            earlier = [r for r in snapshots if r <= reached_round - 1]
            at_target = snapshots[max(earlier)] if earlier else None
        per = []
        for i in range(1, n + 1):
            w = f"w{i}"
            end = at_target[w] if at_target else rec["after_bytes"][w]
            per.append({"worker": w, "tx_bytes": delta(end, before[w], "tx_bytes"),
                        "rx_bytes": delta(end, before[w], "rx_bytes"),
                        "tx_bytes_at_stop": delta(rec["after_bytes"][w], before[w], "tx_bytes"),
                        "rx_bytes_at_stop": delta(rec["after_bytes"][w], before[w], "rx_bytes")})
        rec["link_bytes"] = per
        del rec["after_bytes"]
    finally:
        emc.stop()
    return rec


# ---------------------------------------------------------------- DDP

def run_ddp(args, net, procs, workdir, n, threads, port):
    logs = os.path.join(workdir, "logs")
    os.makedirs(logs, exist_ok=True)
    rec = {"system": "ddp", "algorithm": "ddp", "n": n, "threads": threads}
    summary = os.path.join(workdir, "summary.json")
    master = net.ip("hub") if net.kind == "netns" else "127.0.0.1"
    base_env = dict(os.environ, MASTER_ADDR=master, MASTER_PORT=str(port), WORLD_SIZE=str(n), OMP_NUM_THREADS=str(threads))
    common = ["--model", args.model, "--batch-size", str(args.batch_size), "--optimizer", args.ddp_optimizer,
              "--lr", str(args.ddp_lr), "--threads", str(threads), "--eval-every", str(args.eval_steps),
              "--eval-mode", args.ddp_eval, "--target", str(args.target), "--max-epochs", str(args.max_epochs),
              "--time-cap", str(args.time_cap), "--seed", str(args.seed)]
    store = None
    ranks = []
    before = {f"w{i}": net.bytes(f"w{i}") for i in range(1, n + 1)}
    try:
        if net.kind == "netns":
            store = procs.start("store", net.prefix("hub") + [PYTHON, DDP, "--serve-store"], os.path.join(logs, "store.log"), env=base_env)
            common += ["--external-store", "--iface", "veth0"]
            time.sleep(1)
        for r in range(n):
            env = dict(base_env, RANK=str(r), GLOO_SOCKET_IFNAME=net.iface())
            name = f"w{r + 1}"
            cmd = net.prefix(name) + [PYTHON, DDP] + common + (["--summary", summary] if r == 0 else [])
            if r == 0:
                rec["command"] = "RANK=r WORLD_SIZE=%d python3 ddp_fmnist.py %s" % (n, " ".join(common))
                log(f"  training: {rec['command']}")
            ranks.append(procs.start(f"rank-{r}", cmd, os.path.join(logs, f"rank-{r}.log"), env=env))
        deadline = time.time() + args.time_cap + 600
        while any(p.poll() is None for p in ranks):
            if time.time() > deadline or any(p.poll() not in (None, 0) for p in ranks):
                break
            time.sleep(1)
        rec["rank_peak_rss_mib_polled"] = [procs.read_peak(p.pid) for p in ranks]
        after = {f"w{i}": net.bytes(f"w{i}") for i in range(1, n + 1)}
        codes = [p.poll() for p in ranks]
        if any(c != 0 for c in codes):
            raise RuntimeError(f"DDP ranks exited with {codes} (see {logs})")
        with open(summary) as f:
            s = json.load(f)
        rec.update({k: s[k] for k in ("target", "reached", "seconds_to_target", "seconds", "eval_seconds", "steps", "epochs",
                                      "samples", "samples_per_second", "samples_per_second_excluding_eval", "eval_accuracy",
                                      "parameters", "analytic_allreduce_bytes_per_rank", "optimizer", "lr")})
        rec["stop_reason"] = "target" if s["reached"] else "time cap or epochs"
        if s["reached"]:
            # samples/s up to the target (the run stops at the evaluation that reached it)
            rec["samples_to_target"] = s["samples"]
            rec["samples_per_second"] = round(s["samples"] / s["seconds_to_target"], 1)
        rec["node_peak_rss_mib"] = [r["peak_rss_mib"] for r in s["ranks"]]
        rec["coordinator_peak_rss_mib"] = procs.read_peak(store.pid) if store else None
        rec["link_bytes"] = [{"worker": f"w{r['rank'] + 1}", "tx_bytes": r["tx_bytes"], "rx_bytes": r["rx_bytes"],
                              "tx_bytes_whole_process": delta(after[f"w{r['rank'] + 1}"], before[f"w{r['rank'] + 1}"], "tx_bytes")}
                             for r in s["ranks"]]
    finally:
        procs.stop(ranks, grace=20)
        if store is not None:
            procs.stop([store], grace=10)
    return rec


# ---------------------------------------------------------------- report

def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def worker_tx(rec):
    """Bytes sent per worker up to the target (or the stop when missed): link tx in netns; on loopback the
    uploads the coordinator received (EMC) or the analytic all-reduce volume (DDP)."""
    tx = mean([b["tx_bytes"] for b in rec.get("link_bytes", [])])
    if tx is not None:
        return tx, "link tx"
    if rec["system"] == "ddp":
        return rec.get("analytic_allreduce_bytes_per_rank"), "analytic"
    if rec.get("upload_bytes_to_target_per_worker") is not None:
        return rec["upload_bytes_to_target_per_worker"], "rounds' uploads"
    return rec.get("bytes_sent_per_worker_job_view"), "job view"


def examples(rec):
    """Training examples the bytes of worker_tx cover."""
    return rec.get("samples_to_target") if rec.get("reached") else rec.get("samples")


def fmt(x, digits=1, scale=1.0):
    if x is None:
        return "–"
    return f"{x / scale:,.{digits}f}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def markdown(meta, records):
    out = [f"# Training comparison {meta['timestamp']}", "",
           f"Model **{meta['model']}**, Fashion-MNIST, target test accuracy **{meta['target']}**, time cap {meta['time_cap']:.0f} s, "
           f"batch {meta['batch_size']} per worker, DiLoCo H={meta['inner_steps']}, EMC updates {meta['precision']}, "
           f"DDP {meta['ddp_optimizer']} lr {meta['ddp_lr']}, evaluation every {meta['eval_steps']} steps. "
           f"netns links: {meta['rate']} each direction. Host: {meta['host']}.", "",
           "| network | system | N | threads | reached | s to target | samples/s | steps | MB sent / worker | MB received / worker | bytes source | analytic all-reduce MB / rank | worker peak RSS MiB | node over single process MiB | coordinator / store peak RSS MiB | accuracy | stop |",
           "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in records:
        if "error" in r:
            out.append(f"| {r['network']} | {r['system']} | {r['n']} | | error: {r['error'][:80]} | | | | | | | | | | | | |")
            continue
        tx, source = worker_tx(r)
        rx = mean([b["rx_bytes"] for b in r.get("link_bytes", [])])
        out.append("| " + " | ".join([
            r["network"], r["system"], str(r["n"]), str(r["threads"]), "yes" if r["reached"] else "no",
            fmt(r.get("seconds_to_target")), fmt(r.get("samples_per_second"), 0), str(r.get("steps", "–")),
            fmt(tx, 2, 1e6), fmt(rx, 2, 1e6), source,
            fmt(r.get("analytic_allreduce_bytes_per_rank"), 1, 1e6),
            fmt(max([x for x in r.get("node_peak_rss_mib", []) if x is not None], default=None), 0),
            fmt(node_over_reference(meta, r), 1),
            fmt(r.get("coordinator_peak_rss_mib"), 0), fmt(r.get("eval_accuracy"), 4), r.get("stop_reason", "")]) + " |")
    refs = meta.get("single_process", {})
    if refs:
        out += ["", "Single-process reference (`emc bench train-local`, the node's own training code in one process, no network): " +
                "; ".join(f"{t} thread(s): peak RSS {r['peakRssMiB']:.1f} MiB, {r['samplesPerSecond']:,.0f} samples/s" for t, r in sorted(refs.items())) +
                f". One fp32 copy of the weights is {next(iter(refs.values()))['weightsMiB']:.2f} MiB."]
    out += ["", "## Ratios", "",
            "DDP over EMC at the same network and N. Bytes: sent per worker up to the target (above 1: DDP sends more); "
            "marked * where either run missed the target: then bytes per training example are compared instead. "
            "Time: seconds to target (above 1: DDP is slower); – where either run missed the target.", "",
            "| network | N | DDP / DiLoCo bytes | DDP / DiLoCo time | DDP / sync bytes | DDP / sync time |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    index = {(r["network"], r["system"], r["n"]): r for r in records if "error" not in r}
    for (network, system, n), ddp in sorted(index.items()):
        if system != "ddp":
            continue
        cells = []
        for other in ("emc-diloco", "emc-sync"):
            o = index.get((network, other, n))
            if o is None:
                cells += [None, None]
                continue
            if ddp["reached"] and o["reached"]:
                cells.append(fmt(ratio(worker_tx(ddp)[0], worker_tx(o)[0]), 2))
            else:
                per_example = ratio(ratio(worker_tx(ddp)[0], examples(ddp)), ratio(worker_tx(o)[0], examples(o)))
                cells.append(fmt(per_example, 2) + ("*" if per_example is not None else ""))
            cells.append(fmt(ratio(ddp.get("seconds_to_target"), o.get("seconds_to_target")), 2))
        out.append(f"| {network} | {n} | " + " | ".join(c if isinstance(c, str) else fmt(c, 2) for c in cells) + " |")
    out += ["", "Columns are explained in bench/training/README.md.", ""]
    return "\n".join(out)


def single_process_references(args):
    """`emc bench train-local` per thread count the EMC settings use: the memory and speed of training the
    same model in one process through the node's own code (no network, no coordinator)."""
    refs = {}
    if not any(system.startswith("emc") for system, _ in args.settings):
        return refs
    for threads in sorted({args.threads or max(1, (os.cpu_count() or 1) // n) for system, n in args.settings if system.startswith("emc")}):
        log(f"single-process reference: emc bench train-local --model {args.model} --threads {threads}")
        r = subprocess.run(["dotnet", args.emc, "bench", "train-local", "--model", args.model, "--threads", str(threads),
                            "--steps", "300", "--batch-size", str(args.batch_size), "--json"], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            log(f"  train-local failed ({r.returncode}): {r.stderr.strip()[:300]}")
            continue
        refs[str(threads)] = json.loads(r.stdout)
        log(f"  peak RSS {refs[str(threads)]['peakRssMiB']} MiB, {refs[str(threads)]['samplesPerSecond']} samples/s")
    return refs


def node_over_reference(meta, rec):
    """A node's peak RSS above single-process training of the same model with the same threads (MiB)."""
    ref = meta.get("single_process", {}).get(str(rec.get("threads")))
    peaks = [x for x in rec.get("node_peak_rss_mib", []) if x is not None]
    if not ref or not peaks or not rec["system"].startswith("emc"):
        return None
    return max(peaks) - ref["peakRssMiB"]


def host_description():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu})"


# ---------------------------------------------------------------- main

def main():
    args = parse_args()
    if not os.path.exists(args.emc) and any(s.startswith("emc") for s, _ in args.settings):
        sys.exit(f"run.sh: {args.emc} is missing; build first: dotnet build src/Emc.Cli -c Release")
    if "netns" in args.networks and os.geteuid() != 0:
        sys.exit("run.sh: the netns network needs root")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    tmp = tempfile.mkdtemp(prefix="emcb-run.")
    procs = Procs()
    networks = {}
    records = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_signal)
    meta = {"timestamp": stamp, "model": args.model, "target": args.target, "time_cap": args.time_cap,
            "batch_size": args.batch_size, "inner_steps": args.inner_steps, "eval_steps": args.eval_steps,
            "precision": args.precision, "ddp_optimizer": args.ddp_optimizer, "ddp_lr": args.ddp_lr, "ddp_eval": args.ddp_eval,
            "rate": args.rate, "max_epochs": args.max_epochs, "emc_warmup": not args.no_emc_warmup, "host": host_description(),
            "settings": [f"{s}:{n}" for s, n in args.settings], "networks": args.networks}
    os.makedirs(args.results, exist_ok=True)
    meta["single_process"] = single_process_references(args)
    base_port = 17000 + (os.getpid() % 1000) * 10
    try:
        for kind in args.networks:
            net = Network(kind, args.rate)
            networks[kind] = net
            if kind == "netns":
                net.down()
                net.up(max(n for _, n in args.settings))
            for index, (system, n) in enumerate(args.settings):
                threads = args.threads or max(1, (os.cpu_count() or 1) // n)
                workdir = os.path.join(tmp, f"{kind}-{system}-{n}")
                os.makedirs(workdir)
                log(f"{kind} {system} N={n} ({threads} threads per worker)")
                t = time.time()
                try:
                    if system == "ddp":
                        port = free_port() if kind == "loopback" else base_port + index * 3
                        rec = run_ddp(args, net, procs, workdir, n, threads, port)
                    else:
                        ports = (free_port(), free_port()) if kind == "loopback" else (base_port + index * 3, base_port + index * 3 + 1)
                        rec = run_emc(args, net, procs, workdir, system.split("-")[1], n, threads, ports)
                except (RuntimeError, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
                    log(f"  FAILED: {e}")
                    rec = {"system": system, "n": n, "threads": threads, "error": str(e)}
                    kept = os.path.join(args.results, f"{stamp}.logs", f"{kind}-{system}-{n}")
                    shutil.copytree(os.path.join(workdir, "logs"), kept, dirs_exist_ok=True) if os.path.isdir(os.path.join(workdir, "logs")) else None
                    rec["logs"] = kept
                procs.stop_all()
                rec["network"] = kind
                rec["wall_seconds"] = round(time.time() - t, 1)
                records.append(rec)
                if "error" not in rec:
                    log(f"  reached={rec['reached']} seconds_to_target={rec.get('seconds_to_target')} accuracy={rec.get('eval_accuracy')} "
                        f"bytes/worker={worker_tx(rec)[0]}")
                # the partial results are written after every setting
                with open(os.path.join(args.results, f"{stamp}.json"), "w") as f:
                    json.dump({"meta": meta, "runs": records}, f, indent=2)
                with open(os.path.join(args.results, f"{stamp}.md"), "w") as f:
                    f.write(markdown(meta, records))
            net.down()
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
    finally:
        procs.close()
        for net in networks.values():
            net.down()
        if args.keep_temp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"results: {os.path.join(args.results, stamp + '.md')} and .json")
    print(os.path.join(args.results, f"{stamp}.md"))
    return 0 if records and all("error" not in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
