# Shared helpers for the scripts in this folder. Source it; do not run it.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${REDISAI_CACHE_DIR:-$REPO_ROOT/.cache}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages that are missing (names given as arguments).
ensure_apt_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_build_deps() {
    ensure_apt_packages redis-server redis-tools libclang-dev build-essential pkg-config python3 python3-venv
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            log "cargo not found: install Rust with rustup (https://rustup.rs) first"
            exit 1
        fi
    fi
}

# Builds the core module and lays out dist/: dist/redisai.so and dist/backends/.
build_core() {
    local profile="${1:-release}"
    local flag=()
    [ "$profile" = "release" ] && flag=(--release)
    log "building the core module ($profile)"
    (cd "$REPO_ROOT" && cargo build -p redisai-core "${flag[@]}")
    mkdir -p "$REPO_ROOT/dist/backends"
    install -m 0755 "$REPO_ROOT/target/$profile/libredisai.so" "$REPO_ROOT/dist/redisai.so"
}

source "$REPO_ROOT/scripts/backends.sh"

# Builds the core and every backend plugin this machine can build, laid out in dist/.
build_all() {
    local profile="${1:-release}"
    build_core "$profile"
    build_backend_onnx "$profile"
    build_backend_tflite "$profile"
}
