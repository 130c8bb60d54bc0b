// Compiles the C++ shim (shim/*.cpp: the common helpers, TorchScript models, scripts,
// the script extensions and the sandbox policy's graph walk, behind the C interface of
// shim/shim.h) against libtorch and links libtorch_cpu and libc10.
//
// LIBTORCH must name a folder with include/ and lib/ (scripts/fetch-libtorch prints one:
// the torch/ folder of the pinned wheel). The plugin finds libtorch at run time through
// an rpath of $ORIGIN/torch/lib (the layout of dist/backends/redisai_torch/); tests and
// tools built here get an rpath to $LIBTORCH/lib as well.
use std::path::PathBuf;

/// The shim's translation units (shim/common.h declares what they share).
const SOURCES: [&str; 6] = [
    "shim/common.cpp",
    "shim/models.cpp",
    "shim/scripts.cpp",
    "shim/script_ops.cpp",
    "shim/policy.cpp",
    "shim/memory.cpp",
];

fn main() {
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-changed=shim/common.h");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        panic!(
            "LIBTORCH is not set: point it at a libtorch folder (include/ and lib/), \
             e.g. `LIBTORCH=$(scripts/fetch-libtorch)`, or build with scripts/build-backend-torch"
        );
    };
    let include = libtorch.join("include");
    let lib = libtorch.join("lib");
    if !include.join("torch").is_dir() || !lib.join("libtorch_cpu.so").is_file() {
        panic!(
            "LIBTORCH={} has no include/torch or lib/libtorch_cpu.so",
            libtorch.display()
        );
    }
    cc::Build::new()
        .cpp(true)
        .files(SOURCES)
        .std("c++17")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("redisai_torch_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/torch/lib");
    for kind in ["tests", "bins"] {
        println!("cargo:rustc-link-arg-{kind}=-Wl,-rpath,{}", lib.display());
    }
}
