//! The GPU bundle's layout (scripts/assemble-gpu-bundle, scripts/check-gpu-bundle), on
//! small stand-in files: the real bundle needs ~1.4 GB of wheels, which scripts/build-gpu
//! downloads and CI does not. Checked: only `_gpu` backend folders, each with its plugin;
//! a CPU-only backend is refused; libraries must resolve from their own folder (only the
//! NVIDIA driver, libcuda.so.1, may come from the system).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str) -> PathBuf {
    redisai_tests::workspace_root().join("scripts").join(name)
}

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redisai-gpu-bundle-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("dir");
    }
    std::fs::write(path, text).expect("write");
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stand-ins: a core, a plugin and a runtime folder with a library and its link.
fn stand_ins(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let core = dir.join("libredisai.so");
    let plugin = dir.join("libredisai_onnxruntime.so");
    let runtime = dir.join("runtime");
    write(&core, "core");
    write(&plugin, "plugin");
    write(&runtime.join("libonnxruntime.so.1.31.1"), "runtime");
    write(&runtime.join(".complete"), "cache stamp");
    std::os::unix::fs::symlink(
        "libonnxruntime.so.1.31.1",
        runtime.join("libonnxruntime.so.1"),
    )
    .expect("link");
    (core, plugin, runtime)
}

#[test]
fn the_bundle_holds_the_core_and_gpu_variants_only() {
    let dir = fresh_dir("layout");
    let (core, plugin, runtime) = stand_ins(&dir);
    let out = dir.join("dist-gpu");
    let spec = format!(
        "redisai_onnxruntime_gpu={}:{}",
        plugin.display(),
        runtime.display()
    );
    let done = run(Command::new(script("assemble-gpu-bundle"))
        .arg(&out)
        .arg(&core)
        .arg(&spec));
    assert!(done.status.success(), "{}", stderr(&done));
    let backend = out.join("backends/redisai_onnxruntime_gpu");
    for file in [
        "redisai_onnxruntime_gpu.so",
        "libonnxruntime.so.1.31.1",
        "libonnxruntime.so.1",
    ] {
        assert!(backend.join(file).exists(), "{file} is laid out");
    }
    assert!(out.join("redisai.so").is_file());
    assert!(!backend.join(".complete").exists(), "no cache files");
    let entries: Vec<_> = std::fs::read_dir(out.join("backends"))
        .expect("backends")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, vec!["redisai_onnxruntime_gpu"]);
    let check = run(Command::new(script("check-gpu-bundle")).arg(&out));
    assert!(check.status.success(), "{}", stderr(&check));

    // A CPU-only backend is refused when assembling ...
    let refused = run(Command::new(script("assemble-gpu-bundle"))
        .arg(dir.join("other"))
        .arg(&core)
        .arg(format!(
            "redisai_onnxruntime={}:{}",
            plugin.display(),
            runtime.display()
        )));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("redisai_onnxruntime is not a GPU variant"),
        "{}",
        stderr(&refused)
    );
    assert!(!dir.join("other").exists(), "nothing is left behind");

    // ... and found when checking a bundle that has one, or a GPU folder without its plugin.
    write(
        &out.join("backends/redisai_tflite/redisai_tflite.so"),
        "cpu only",
    );
    write(
        &out.join("backends/redisai_torch_gpu/libtorch.so"),
        "no plugin",
    );
    let check = run(Command::new(script("check-gpu-bundle")).arg(&out));
    assert!(!check.status.success());
    let text = stderr(&check);
    assert!(
        text.contains("backends/redisai_tflite is not a GPU variant"),
        "{text}"
    );
    assert!(
        text.contains("backends/redisai_torch_gpu/redisai_torch_gpu.so is missing"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn cc(args: &[&str], cwd: &Path) {
    let done = run(Command::new("cc").args(args).current_dir(cwd));
    assert!(done.status.success(), "cc {args:?}: {}", stderr(&done));
}

/// Builds `libneeds.so` in `dir`, which needs `libghost.so.1` (on no system; built beside
/// it), linked with `extra` flags.
fn ghost_libraries(dir: &Path, extra: &[&str]) {
    std::fs::write(dir.join("ghost.c"), "int ghost(void) { return 1; }\n").expect("c");
    std::fs::write(
        dir.join("needs.c"),
        "int ghost(void);\nint needs(void) { return ghost(); }\n",
    )
    .expect("c");
    let ghost = [
        "-shared",
        "-fPIC",
        "-Wl,-soname,libghost.so.1",
        "-o",
        "libghost.so.1",
        "ghost.c",
    ];
    cc(&ghost, dir);
    let needs = [
        "-shared",
        "-fPIC",
        "-o",
        "libneeds.so",
        "needs.c",
        "-Wl,--no-as-needed",
        "./libghost.so.1",
    ];
    cc(&[&needs[..], extra].concat(), dir);
}

#[test]
fn backend_libraries_must_resolve_from_their_folder() {
    let dir = fresh_dir("links");
    ghost_libraries(&dir, &[]);
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).expect("dir");
    std::fs::copy(dir.join("libneeds.so"), runtime.join("libneeds.so")).expect("copy");
    write(&dir.join("core.so"), "core");
    write(&dir.join("plugin.so"), "plugin");
    let assemble = |out: &Path| {
        run(Command::new(script("assemble-gpu-bundle"))
            .arg(out)
            .arg(dir.join("core.so"))
            .arg(format!(
                "x_gpu={}:{}",
                dir.join("plugin.so").display(),
                runtime.display()
            )))
    };
    let missing = assemble(&dir.join("without"));
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("x_gpu/libneeds.so needs libghost.so.1"),
        "{}",
        stderr(&missing)
    );
    std::fs::copy(dir.join("libghost.so.1"), runtime.join("libghost.so.1")).expect("copy");
    let complete = assemble(&dir.join("with"));
    assert!(complete.status.success(), "{}", stderr(&complete));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn libraries_in_subfolders_are_checked_and_keep_their_relative_rpaths() {
    // The Torch variant keeps the wheels' layout: torch/lib/*.so find nvidia/*/lib/*
    // through $ORIGIN/../../nvidia/... rpaths, which must survive assembly.
    let dir = fresh_dir("nested");
    ghost_libraries(&dir, &["-Wl,-rpath,$ORIGIN/../../nvidia/ghost/lib"]);
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(runtime.join("torch/lib")).expect("dir");
    std::fs::copy(
        dir.join("libneeds.so"),
        runtime.join("torch/lib/libneeds.so"),
    )
    .expect("copy");
    write(&dir.join("core.so"), "core");
    write(&dir.join("plugin.so"), "plugin");
    let assemble = |out: &Path| {
        run(Command::new(script("assemble-gpu-bundle"))
            .arg(out)
            .arg(dir.join("core.so"))
            .arg(format!(
                "t_gpu={}:{}",
                dir.join("plugin.so").display(),
                runtime.display()
            )))
    };
    let missing = assemble(&dir.join("without"));
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("t_gpu/torch/lib/libneeds.so needs libghost.so.1"),
        "{}",
        stderr(&missing)
    );
    // In the top folder it would be found only through LD_LIBRARY_PATH, which the check
    // sets for the ONNX variant's preloading; in the rpath's folder it is found as at run time.
    let ghost_dir = runtime.join("nvidia/ghost/lib");
    std::fs::create_dir_all(&ghost_dir).expect("dir");
    std::fs::copy(dir.join("libghost.so.1"), ghost_dir.join("libghost.so.1")).expect("copy");
    let out = dir.join("with");
    let complete = assemble(&out);
    assert!(complete.status.success(), "{}", stderr(&complete));
    assert!(out
        .join("backends/t_gpu/nvidia/ghost/lib/libghost.so.1")
        .is_file());
    let check = run(Command::new(script("check-gpu-bundle")).arg(&out));
    assert!(check.status.success(), "{}", stderr(&check));
    let _ = std::fs::remove_dir_all(&dir);
}
