//! The module's sections of INFO MODULES.

use redis_module::{InfoContext, RedisResult};

use crate::settings;

pub fn report_info(ctx: &InfoContext, for_crash_report: bool) {
    // INFO has no way to report a failure to the client; a section that cannot be
    // built is left out rather than breaking the whole INFO reply.
    if let Err(err) = build(ctx, for_crash_report) {
        redis_module::logging::log_warning(format!(
            "INFO MODULES: cannot build the ai sections: {err}"
        ));
    }
}

/// A loaded backend's field name: `onnx`, and `onnx_gpu` for its GPU variant, so that
/// both variants of one backend can be listed (INFO refuses duplicate keys).
fn info_key(backend: &crate::backend::Backend) -> String {
    use crate::backend::registry::Variant;
    let name = backend.name.to_ascii_lowercase();
    match Variant::of_path(&backend.path) {
        Variant::Default => name,
        Variant::Gpu => format!("{name}_gpu"),
    }
}

/// Builds the sections. A crash report runs on whatever thread crashed, perhaps one
/// that holds the settings, registry or queue locks: it gets only the versions, which
/// take no lock, so that the report (and the process, which should exit) cannot hang.
fn build(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    let versions = ctx
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
        .build_section()?;
    if for_crash_report {
        versions.build_info()?;
        return Ok(());
    }
    let config = settings::read().clone();
    let mut versions = versions.add_section("load_time_configs");
    for (name, value) in config.info_fields() {
        versions = versions.field(name, value)?;
    }
    let requested: Vec<String> = config
        .backends_at_load
        .iter()
        .map(|(kind, path)| format!("{kind}={}", path.display()))
        .collect();
    let mut backends = versions
        .field("backends_requested", requested.join(","))?
        .build_section()?
        .add_section("backends");
    let loaded = crate::backend::registry::loaded();
    backends = backends.field("loaded", loaded.len().to_string())?;
    for backend in &loaded {
        backends = backends.field(
            &info_key(backend),
            format!(
                "runtime={},abi={}.{},devices={},path={}",
                backend.runtime_version,
                backend.abi_version.0,
                backend.abi_version.1,
                backend.device_names().join("|"),
                backend.path.display()
            ),
        )?;
    }
    let mut queues = backends.build_section()?.add_section("queues");
    let stats = crate::exec::queue_stats();
    queues = queues.field("count", stats.len().to_string())?;
    for (device, queue) in stats {
        queues = queues.field(
            &format!(
                "queue_{}",
                device.to_string().to_ascii_lowercase().replace(':', "_")
            ),
            format!(
                "threads={},pending={},done={},cpu_us={},inline={}",
                queue.threads, queue.pending, queue.done, queue.cpu_us, queue.inline_done
            ),
        )?;
    }
    let loader = crate::exec::loader::stats();
    queues = queues.field(
        "loader",
        format!(
            "pending={},loading={}",
            loader.pending,
            u8::from(loader.busy)
        ),
    )?;
    queues.build_section()?.build_info()?;
    Ok(())
}
