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
    build_backend_torch "$profile"
    build_backend_tensorflow "$profile"
}

# Builds the edge bundle, dist-edge/: the core module and the TFLite backend only,
# release-built and stripped, in the same layout as dist/ (so BACKENDSPATH's default,
# backends/ beside redisai.so, finds it):
#   dist-edge/redisai.so
#   dist-edge/backends/redisai_tflite/redisai_tflite.so
#   dist-edge/backends/redisai_tflite/libLiteRt.so
# Our .so files get `strip --strip-unneeded`. libLiteRt.so ships stripped in the wheel
# (no .symtab, no debug sections; strip would save 8 bytes), so it is copied as is,
# byte-identical to the pinned wheel's, and stripped only if a future one is not.
# dist/ is not touched; dist-edge/ is assembled aside and swapped in whole.
build_edge() {
    ensure_litert
    log "building the edge bundle: core + TFLite backend (release)"
    # Two invocations, as build_core and build_backend_tflite do, so that the artifacts
    # (and feature resolution) are the same as dist/'s and cargo's cache is shared.
    (cd "$REPO_ROOT" && cargo build -p redisai-core --release)
    (cd "$REPO_ROOT" && cargo build -p redisai-tflite --release)
    local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
    local out="$REPO_ROOT/dist-edge"
    local tmp
    tmp="$(mktemp -d "$REPO_ROOT/.dist-edge.XXXXXX")"
    local backend="$tmp/backends/redisai_tflite"
    mkdir -p "$backend"
    install -m 0755 "$target/libredisai.so" "$tmp/redisai.so"
    install -m 0755 "$target/libredisai_tflite.so" "$backend/redisai_tflite.so"
    install -m 0755 "$REDISAI_LITERT_LIB" "$backend/$LITERT_LIB_NAME"
    strip --strip-unneeded "$tmp/redisai.so" "$backend/redisai_tflite.so"
    if readelf -S -W "$backend/$LITERT_LIB_NAME" | grep -Eq ' \.(symtab|debug_[a-z_]+) '; then
        log "stripping $LITERT_LIB_NAME (it has a symbol table or debug sections)"
        strip --strip-unneeded "$backend/$LITERT_LIB_NAME"
    fi
    chmod 0755 "$tmp"
    rm -rf "$out"
    mv "$tmp" "$out"
    log "edge bundle ready: $out"
}
