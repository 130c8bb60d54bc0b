//! Checks that `include/redisai_plugin.h` matches what cbindgen generates from
//! `src/abi.rs` with `cbindgen.toml`.
//!
//! Regenerate the header with
//! `REDISAI_UPDATE_HEADER=1 cargo test -p redisai-plugin-api --test header`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use redisai_plugin_api::abi::RAI_PLUGIN_ENTRY_SYMBOL;

const HEADER: &str = "include/redisai_plugin.h";
const UPDATE_VAR: &str = "REDISAI_UPDATE_HEADER";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `//!` documentation of `abi.rs` as a C block comment: cbindgen copies item docs
/// but not module docs, and the versioning, ownership and threading rules live there.
fn module_docs_comment(abi_source: &str) -> String {
    let lines: Vec<&str> = abi_source
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .map(|text| text.strip_prefix(' ').unwrap_or(text))
        .collect();
    assert!(!lines.is_empty(), "src/abi.rs has no module documentation");
    let mut comment = String::from("\n/*\n");
    for line in lines {
        assert!(
            !line.contains("*/"),
            "src/abi.rs module docs contain `*/`, which would end the C comment: {line}"
        );
        comment.push_str(if line.is_empty() { " *" } else { " * " });
        comment.push_str(line);
        comment.push('\n');
    }
    comment.push_str(" */");
    comment
}

/// A Rust declaration of the entry function for cbindgen to turn into a C prototype:
/// abi.rs only names it (a plugin, not the ABI crate, defines it).
fn entry_stub() -> String {
    format!(
        "use crate::abi::RaiPluginApi;\n\
         /// The one symbol a plugin exports (its name is `RAI_PLUGIN_ENTRY_SYMBOL`, its type\n\
         /// `RaiPluginEntryFn`): returns the plugin's table, never null. The table must stay\n\
         /// valid for the life of the process.\n\
         #[no_mangle]\n\
         pub extern \"C\" fn {ENTRY}() -> *const RaiPluginApi {{\n    \
             unimplemented!()\n\
         }}\n",
        ENTRY = RAI_PLUGIN_ENTRY_SYMBOL
    )
}

fn generate(dir: &Path) -> String {
    let abi = dir.join("src/abi.rs");
    let abi_source = std::fs::read_to_string(&abi).expect("read src/abi.rs");
    let mut config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let notice = config.header.take().unwrap_or_default();
    config.header = Some(notice + &module_docs_comment(&abi_source));
    // cbindgen skips `&str` constants: define the entry symbol's name by hand.
    let mut after_includes = config.after_includes.take().unwrap_or_default();
    after_includes.push_str(&format!(
        "\n\n/** Name of the one symbol a plugin exports. */\n\
         #define RAI_PLUGIN_ENTRY_SYMBOL \"{RAI_PLUGIN_ENTRY_SYMBOL}\""
    ));
    config.after_includes = Some(after_includes);

    // One file per process: concurrent `cargo test` runs share the target directory.
    let stub = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "redisai_plugin_entry_stub_{}.rs",
        std::process::id()
    ));
    std::fs::write(&stub, entry_stub()).expect("write the entry stub");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(abi)
        .with_src(&stub)
        .generate()
        .expect("cbindgen failed on src/abi.rs");
    let _ = std::fs::remove_file(&stub);
    let mut out = Vec::new();
    bindings.write(&mut out);
    let text = String::from_utf8(out).expect("cbindgen wrote UTF-8");
    // Rustdoc links (`[`RaiTensorOut`]`) mean nothing in C: keep the code span only.
    text.replace("[`", "`").replace("`]", "`")
}

/// The header as generated now, once per test process.
fn generated() -> &'static str {
    static GENERATED: OnceLock<String> = OnceLock::new();
    GENERATED.get_or_init(|| generate(&crate_dir()))
}

#[test]
fn header_is_up_to_date() {
    let dir = crate_dir();
    let path = dir.join(HEADER);
    let generated = generated();
    if std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).expect("create include/");
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("write {HEADER}: {e}"));
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first_difference = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "{HEADER} is stale (first difference at line {}): run \
             `{UPDATE_VAR}=1 cargo test -p redisai-plugin-api --test header` and commit it",
            first_difference + 1
        );
    }
}

/// The header states what abi.rs states: a guard against an item that cbindgen.toml
/// silently leaves out (cbindgen only emits types it is told about or can reach).
#[test]
fn header_has_every_item_of_abi_rs() {
    let dir = crate_dir();
    let generated = generated();
    let abi_source = std::fs::read_to_string(dir.join("src/abi.rs")).expect("read src/abi.rs");
    let mut checked = 0;
    for line in abi_source.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (kind, name) = match words.as_slice() {
            ["pub", kind @ ("struct" | "enum" | "type" | "const"), name, ..] => {
                (*kind, name.trim_end_matches([':', '{', ';']))
            }
            _ => continue,
        };
        let declared = if kind == "const" {
            generated.contains(&format!("#define {name} "))
        } else {
            generated.lines().any(|l| {
                ((l.starts_with("typedef ") || l.starts_with('}'))
                    && l.ends_with(&format!(" {name};")))
                    || l.contains(&format!("(*{name})("))
            })
        };
        assert!(declared, "{HEADER} does not declare `{name}` of src/abi.rs: add it to `[export] include` in cbindgen.toml");
        checked += 1;
    }
    assert!(checked >= 18, "found only {checked} items in src/abi.rs");
}

#[test]
fn header_declares_the_abi() {
    let generated = generated();
    for needle in [
        "#define RAI_PLUGIN_ABI_MAJOR 1",
        "#define RAI_PLUGIN_ABI_MINOR 5",
        "void *(*output_alloc)(size_t byte_len);",
        "RaiErrorCode_OutOfMemory = 4,",
        "uint32_t (*error_code)(const RaiError *error);",
        "typedef struct RaiMemoryStats {",
        "#define RAI_SCRIPT_CALL_POSITIONAL 1",
        "typedef struct RaiReply {",
        "#define RAI_PLUGIN_FLAG_CONCURRENT_RUN 1",
        "#define RAI_PLUGIN_ENTRY_SYMBOL \"redisai_plugin_entry\"",
        "RaiDType_Float = 0,",
        "RaiDType_String = 9,",
        "typedef uint32_t RaiDType;",
        "typedef struct RaiPluginApi {",
        "typedef const struct RaiPluginApi *(*RaiPluginEntryFn)(void);",
        "RAI_PLUGIN_EXPORT const struct RaiPluginApi *redisai_plugin_entry(void);",
        "# Threading",
    ] {
        assert!(generated.contains(needle), "the header lacks `{needle}`");
    }
}
