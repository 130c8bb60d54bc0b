//! Backend plugins written in C against `plugin-api/include/redisai_plugin.h`, built
//! into shared libraries by `build.rs`. Tests depend on this crate for their paths.
//!
//! - [`EXAMPLE_ADD_PLUGIN`]: backend `EXAMPLE`, a complete plugin (see
//!   `example_add.c`): the model blob `add` sums two FLOAT tensors.
//! - [`BAD_ABI_PLUGIN`]: reports `abi_major = RAI_PLUGIN_ABI_MAJOR + 1`; the core must
//!   refuse it.
//! - [`NEWER_MINOR_PLUGIN`]: reports `abi_minor = RAI_PLUGIN_ABI_MINOR + 1`; the core
//!   must refuse it.

/// An ABI exercise for scripts and the host services (`script_echo.c`); it names
/// itself `TORCH` so the TORCH-only script commands accept it. Not a TorchScript
/// runtime: never a stand-in for the real plugin in feature tests.
pub const SCRIPT_ECHO_PLUGIN: &str = concat!(env!("OUT_DIR"), "/script_echo.so");

/// [`SCRIPT_ECHO_PLUGIN`] declaring ABI 1.1, from before `RaiScriptCall` told
/// AI.SCRIPTRUN from AI.SCRIPTEXECUTE: the core still loads and calls it.
pub const SCRIPT_ECHO_ABI_1_1_PLUGIN: &str = concat!(env!("OUT_DIR"), "/script_echo_abi_1_1.so");

/// The `EXAMPLE` backend (`example_add.c`).
pub const EXAMPLE_ADD_PLUGIN: &str = concat!(env!("OUT_DIR"), "/example_add.so");

/// Backend name of [`EXAMPLE_ADD_PLUGIN`].
pub const EXAMPLE_ADD_BACKEND: &str = "EXAMPLE";

/// A plugin for the next major ABI version (`bad_abi.c`).
pub const BAD_ABI_PLUGIN: &str = concat!(env!("OUT_DIR"), "/bad_abi.so");

/// A plugin for a newer minor ABI version than the core's (`newer_minor.c`).
pub const NEWER_MINOR_PLUGIN: &str = concat!(env!("OUT_DIR"), "/newer_minor.so");

/// Not a plugin: exports `rai_layout_probe`, the C layout of the ABI types
/// (`tests/layout_probe.c`).
pub const LAYOUT_PROBE_LIBRARY: &str = concat!(env!("OUT_DIR"), "/layout_probe.so");
