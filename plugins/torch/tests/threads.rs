//! INTRA_OP_PARALLELISM and INTER_OP_PARALLELISM, read from the host at init, size
//! libtorch's thread pools. In its own binary: libtorch's pools are per process.

use std::ffi::{c_char, CStr};

use redisai_plugin_api::abi::{
    RaiConfigKey, RaiHostApi, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
};
use redisai_torch::redisai_plugin_entry;

unsafe extern "C" fn host_config(key: u32) -> i64 {
    match key {
        k if k == RaiConfigKey::IntraOpParallelism as u32 => 3,
        k if k == RaiConfigKey::InterOpParallelism as u32 => 2,
        _ => 0,
    }
}

unsafe extern "C" fn host_log(_level: u32, _message: *const c_char) {}

static HOST: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config),
    redis_command: None,
    reply_free: None,
    model_execute: None,
    host_tensor_release: None,
    output_alloc: None,
};

#[test]
fn thread_settings_are_honoured() {
    // SAFETY: the entry point returns a pointer to a static table.
    let api = unsafe { &*redisai_plugin_entry() };
    let init = api.init.expect("init");
    // SAFETY: the host table is static.
    let err = unsafe { init(&HOST) };
    if !err.is_null() {
        // SAFETY: a live error of the plugin.
        let text = unsafe { CStr::from_ptr((api.error_message.expect("message"))(err)) };
        panic!("init: {text:?}");
    }
    assert_eq!(redisai_torch::ffi::threads(), (3, 2));
}
