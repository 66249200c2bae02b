#!/usr/bin/env bash
# The side-by-side training comparison (EMC DiLoCo, EMC sync, PyTorch DDP) on loopback, then behind
# emulated 20 Mbit/s home links. One run = every setting on every network; see README.md.
#
#   bench/training/run.sh                       # cnn, target 0.88, both networks, all six settings
#   bench/training/run.sh --full-target         # the full benchmark: cnn to 0.916
#   bench/training/run.sh --model mlp --full-target   # mlp to 0.883
#   bench/training/run.sh --networks loopback --settings emc-diloco:2,ddp:2 --model mlp --target 0.6
#   bench/training/run.sh --help                # every option
#
# Needs: the CLI built (dotnet build src/Emc.Cli -c Release), Debian's python3-torch at /usr/bin/python3,
# root and iproute2 for the netns network, the Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist.
# Writes bench/training/results/<timestamp>.json and .md; stops every process it started and deletes the
# namespaces and its temporary folder on exit (also on Ctrl-C).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python=/usr/bin/python3

"$python" -c 'import torch, numpy' 2>/dev/null || { echo "run.sh: $python lacks torch/numpy (apt-get install python3-torch)" >&2; exit 2; }
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [[ -f "/usr/share/datasets/fashion-mnist/$f" ]] || { echo "run.sh: /usr/share/datasets/fashion-mnist/$f is missing" >&2; exit 2; }
done
command -v dotnet >/dev/null || { echo "run.sh: dotnet is not on PATH" >&2; exit 2; }

cd "$repo"
exec "$python" "$here/driver.py" "$@"
