// The integration tests define symbols that clash with TensorFlow's bundled zlib (as
// redis-server does with `zcalloc`) and export them from the test executables, so the tests
// can check that TensorFlow, in its own link namespace, does not bind to them.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=zcalloc");
}
