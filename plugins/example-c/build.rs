//! Compiles each C plugin into `$OUT_DIR/<name>.so` with the C compiler the `cc` crate
//! finds (`CC`, `CFLAGS` and the target are honoured as usual), the way a third party
//! would build it: against `plugin-api/include/redisai_plugin.h` alone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Sources, relative to this crate, the libraries they become and `-D` definitions.
const PLUGINS: &[(&str, &str, &[&str])] = &[
    ("example_add.c", "example_add.so", &[]),
    ("bad_abi.c", "bad_abi.so", &[]),
    ("newer_minor.c", "newer_minor.so", &[]),
    ("script_echo.c", "script_echo.so", &[]),
    (
        "script_echo.c",
        "script_echo_abi_1_1.so",
        &["-DSCRIPT_ECHO_ABI_MINOR=1"],
    ),
    ("tests/layout_probe.c", "layout_probe.so", &[]),
];

fn main() {
    let crate_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let include = crate_dir.join("../../plugin-api/include");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("redisai_plugin.h").display()
    );
    let compiler = cc::Build::new().get_compiler();
    for (source, library, defines) in PLUGINS {
        let source = crate_dir.join(source);
        println!("cargo:rerun-if-changed={}", source.display());
        let mut command = compiler.to_command();
        command.args([
            "-std=c11",
            "-shared",
            "-fPIC",
            "-fvisibility=hidden",
            "-O2",
            "-g",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
        ]);
        command
            .args(*defines)
            .arg("-I")
            .arg(&include)
            .arg("-o")
            .arg(out_dir.join(library))
            .arg(&source);
        run(command, &source);
    }
}

fn run(mut command: Command, source: &Path) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler ({command:?}): {e}"));
    assert!(
        status.success(),
        "the C compiler failed on {} ({status}): {command:?}",
        source.display()
    );
}
