//! The module's sections of INFO MODULES.

use redis_module::{InfoContext, RedisResult};

use crate::settings;

pub fn report_info(ctx: &InfoContext, _for_crash_report: bool) {
    // INFO has no way to report a failure to the client; a section that cannot be
    // built is left out rather than breaking the whole INFO reply.
    let _ = build(ctx);
}

fn build(ctx: &InfoContext) -> RedisResult<()> {
    let config = settings::read().clone();
    let mut versions = ctx
        .builder()
        .add_section("versions")
        .field("version", env!("CARGO_PKG_VERSION").to_owned())?
        .field(
            "plugin_abi_version",
            format!(
                "{}.{}",
                redisai_plugin_api::ABI_VERSION_MAJOR,
                redisai_plugin_api::ABI_VERSION_MINOR
            ),
        )?
        .build_section()?
        .add_section("load_time_configs");
    for (name, value) in config.info_fields() {
        versions = versions.field(name, value)?;
    }
    let requested: Vec<String> = config
        .backends_at_load
        .iter()
        .map(|(kind, path)| format!("{kind}={}", path.display()))
        .collect();
    versions
        .field("backends_requested", requested.join(","))?
        .build_section()?
        .add_section("backends")
        .field("loaded", "none".to_owned())?
        .build_section()?
        .build_info()?;
    Ok(())
}
