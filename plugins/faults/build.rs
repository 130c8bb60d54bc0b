// Compiles src/throw.cc: C++ that throws and catches its own exception at the boundary.
fn main() {
    println!("cargo:rerun-if-changed=src/throw.cc");
    cc::Build::new()
        .cpp(true)
        .file("src/throw.cc")
        .flag_if_supported("-std=c++17")
        .warnings(true)
        .compile("redisai_faults_throw");
}
