//! INTRA_OP_PARALLELISM and INTER_OP_PARALLELISM, read from the host at init, size
//! libtorch's thread pools. In its own binary: libtorch's pools are per process.

use redisai_plugin_api::abi::RaiConfigKey;
use redisai_plugin_testkit::host::{set_config, HOST};
use redisai_plugin_testkit::table::Plugin;
use redisai_torch::redisai_plugin_entry;

#[test]
fn thread_settings_are_honoured() {
    set_config(RaiConfigKey::IntraOpParallelism, 3);
    set_config(RaiConfigKey::InterOpParallelism, 2);
    // SAFETY: the entry point returns a pointer to a static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    plugin.init(&HOST).expect("init");
    assert_eq!(redisai_torch::ffi::threads(), (3, 2));
}
