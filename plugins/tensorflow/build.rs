// - The integration tests define symbols that clash with TensorFlow's bundled zlib (as
//   redis-server does with `zcalloc`) and export them from the test executables, so the
//   tests can check that TensorFlow, in its own link namespace, does not bind to them.
// - src/ffi/threads_shim.c (with src/ffi/memory_shim.c, BACKEND_MEMORY_LIMIT's counting
//   allocator), the first object of TensorFlow's link namespace (it gives every
//   thread made there a stack of its own; see src/ffi/namespace/), is compiled into
//   $OUT_DIR/libredisai_tf_threads.so with the C compiler (`CC`, else `cc`), and embedded
//   in the plugin (include_bytes!): nothing more to ship beside it.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi/threads_shim.c");
    println!("cargo:rerun-if-changed=src/ffi/memory_shim.c");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=zcalloc");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let source = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("src/ffi/threads_shim.c");
    let library = out.join("libredisai_tf_threads.so");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&compiler)
        .args(["-std=gnu11", "-shared", "-fPIC", "-O2", "-Wall", "-Werror"])
        .args(["-fvisibility=hidden", "-Wl,-z,now"])
        .arg("-o")
        .arg(&library)
        .arg(&source)
        .arg(source.with_file_name("memory_shim.c"))
        // glibc before 2.34 keeps dlsym and the thread functions in these; later ones
        // have stubs.
        .args(["-ldl", "-lpthread"])
        .status()
        .unwrap_or_else(|err| panic!("could not run the C compiler {compiler}: {err}"));
    assert!(
        status.success(),
        "{compiler} failed to build {}",
        source.display()
    );
}
