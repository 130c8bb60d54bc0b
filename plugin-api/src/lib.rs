//! The versioned C ABI between the redisai-rs core and its backend plugins.
//!
//! - [`abi`]: the `#[repr(C)]` definitions; `include/redisai_plugin.h` is generated
//!   from them for plugins written in C or C++.
//! - [`sdk`]: the safe Rust side: implement [`sdk::Plugin`] and call
//!   [`export_plugin!`]; no `unsafe` needed in the plugin.
//! - `cuda_driver` (feature `cuda-driver`): the NVIDIA driver's device count and the
//!   `dlopen` helpers that GPU variants share; Rust only, not in the header.

pub mod abi;
#[cfg(feature = "cuda-driver")]
pub mod cuda_driver;
pub mod sdk;

pub use abi::{RaiDType, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};

/// Major version of the plugin ABI (alias of [`abi::RAI_PLUGIN_ABI_MAJOR`]).
pub const ABI_VERSION_MAJOR: u32 = abi::RAI_PLUGIN_ABI_MAJOR;
/// Minor version of the plugin ABI (alias of [`abi::RAI_PLUGIN_ABI_MINOR`]).
pub const ABI_VERSION_MINOR: u32 = abi::RAI_PLUGIN_ABI_MINOR;
