// Compiles src/guard.cc: the C++ frame that catches exceptions thrown by LiteRT's C API
// (see that file). It links against libstdc++, which LiteRT itself needs anyway.
fn main() {
    println!("cargo:rerun-if-changed=src/guard.cc");
    cc::Build::new()
        .cpp(true)
        .file("src/guard.cc")
        .flag_if_supported("-std=c++17")
        .warnings(true)
        .compile("redisai_tflite_guard");
}
