//! What the backend plugins' tests share (a dev-dependency of the plugin crates only):
//!
//! - [`runtime`]: the repository's root, the test models, and making sure a plugin's
//!   runtime library can be found ([`runtime::RuntimeLib`]).
//! - [`tensors`]: input tensors with their own storage and little-endian number helpers.
//! - [`settings`]: settings a test can change while a backend uses them.
//! - [`host`]: a static host table ([`host::HOST`]) whose config values a test sets and
//!   whose log it reads.
//! - [`table`]: a driver over a plugin's exported C table, used the way the core uses it;
//!   [`script`]: its scripts.
//! - [`fake_cuda`]: a stand-in NVIDIA driver for the GPU variants' checks.
//! - [`checks`]: checks every plugin's table passes (its facts, timeouts, cancellation).
//! - [`protobuf`]: the protobuf writer ([`Pb`]) for the models tests build by hand, and
//!   [`graph_def`]: TensorFlow GraphDefs built with it.
//! - [`rng`]: a deterministic generator for damaged copies of models.
//! - [`ok`] and [`err`]: a backend call's value, or its error's text.

pub mod checks;
pub mod fake_cuda;
pub mod graph_def;
pub mod host;
pub mod protobuf;
pub mod rng;
pub mod runtime;
pub mod script;
pub mod settings;
pub mod table;
pub mod tensors;

pub use protobuf::Pb;
pub use settings::Settings;
pub use tensors::{f32s, i64s, le_bytes, values, views, Input, Plain};

use redisai_plugin_api::sdk::Error;

/// The value of a backend call that should succeed; panics with `what` and the error.
pub fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: {err}"),
    }
}

/// The error text of a backend call that should fail; panics with `what` if it succeeds.
pub fn err<T>(result: Result<T, Error>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}"),
        Err(err) => err.to_string(),
    }
}
