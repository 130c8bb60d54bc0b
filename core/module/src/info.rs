//! The module's sections of INFO MODULES.

use redis_module::{InfoContext, RedisResult};
use redisai_engine::settings;

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
fn info_key(backend: &redisai_engine::backend::Backend) -> String {
    use redisai_engine::backend::registry::Variant;
    let name = backend.name.to_ascii_lowercase();
    match Variant::of_path(&backend.path) {
        Variant::Default => name,
        Variant::Gpu => format!("{name}_gpu"),
    }
}

/// RedisAI's version this module stands in for (its `ai_RedisAI_version`); the
/// module's own version is `ai_version`.
pub const REDISAI_COMPAT_VERSION: &str = "1.2.7";

/// The encoding version this module writes (RedisAI's `ai_rdb_version` field).
const RDB_ENCODING_VERSION: &str = "100";

/// RedisAI's field for a backend's runtime version.
fn redisai_version_field(name: &str) -> Option<&'static str> {
    match name {
        "TF" => Some("TensorFlow_version"),
        "TFLITE" => Some("TensorFlowLite_version"),
        "TORCH" => Some("Torch_version"),
        "ONNX" => Some("onnxruntime_version"),
        _ => None,
    }
}

/// Builds the sections, RedisAI's fields first in RedisAI's order (`ai_versions`,
/// `ai_git`, `ai_load_time_configs`, `ai_backends_info`, `ai_cpu`), this module's own
/// after them. A crash report runs on whatever thread crashed, perhaps one that holds
/// the settings, registry or queue locks: it gets only the versions and git sections,
/// which take no lock, so that the report (and the process, which should exit) cannot
/// hang.
fn build(ctx: &InfoContext, for_crash_report: bool) -> RedisResult<()> {
    let sections = ctx
        .builder()
        .add_section("versions")
        .field("RedisAI_version", REDISAI_COMPAT_VERSION.to_owned())?
        // RedisAI's C API for other modules (RedisModule_GetSharedAPI) is not offered.
        .field("low_level_API_version", "0".to_owned())?
        .field("rdb_version", RDB_ENCODING_VERSION.to_owned())?
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
        .add_section("git")
        .field(
            "git_sha",
            option_env!("REDISAI_GIT_SHA")
                .unwrap_or("unknown")
                .to_owned(),
        )?
        .build_section()?;
    if for_crash_report {
        sections.build_info()?;
        return Ok(());
    }
    let config = settings::read().clone();
    let mut section = sections.add_section("load_time_configs");
    for (name, value) in config.info_fields() {
        section = section.field(name, value)?;
    }
    let requested: Vec<String> = config
        .backends_at_load
        .iter()
        .map(|(kind, path)| format!("{kind}={}", path.display()))
        .collect();
    let mut section = section
        .field("backends_requested", requested.join(","))?
        .build_section()?
        .add_section("backends_info");
    let loaded = redisai_engine::backend::registry::loaded();
    let mut named = std::collections::HashSet::new();
    for backend in &loaded {
        let Some(field) = redisai_version_field(&backend.name) else {
            continue;
        };
        // One line per framework, as RedisAI had (a GPU variant shares it).
        if !named.insert(field) {
            continue;
        }
        section = section.field(field, backend.runtime_version.clone())?;
        if backend.name == "ONNX" {
            // What ONNX Runtime holds now (all its variants), as the plugin counts it
            // (0 when it cannot tell). RedisAI's allocator also counted its calls; this one does not, so
            // the access count reads 0. A run session is a queue thread.
            let held: u64 = loaded
                .iter()
                .filter(|other| other.name == "ONNX")
                .filter_map(|other| other.memory_stats())
                .map(|memory| memory.held_bytes)
                .sum();
            let threads: usize = redisai_engine::exec::queue_stats()
                .iter()
                .map(|(_, queue)| queue.threads)
                .sum();
            section = section
                .field("onnxruntime_memory", held.to_string())?
                .field("onnxruntime_memory_access_num", "0".to_owned())?
                .field(
                    "onnxruntime_maximum_run_sessions_number",
                    threads.to_string(),
                )?;
        }
    }
    section = section.field("loaded", loaded.len().to_string())?;
    for backend in &loaded {
        if let Some(memory) = backend.memory_stats() {
            let limit = match memory.limit_bytes {
                Some(bytes) => bytes.to_string(),
                None => "none".to_owned(),
            };
            section = section.field(
                &format!("{}_memory", info_key(backend)),
                format!(
                    "held={},peak={},limit={limit}",
                    memory.held_bytes, memory.peak_bytes
                ),
            )?;
        }
        section = section.field(
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
    let mut section = section.build_section()?.add_section("cpu");
    for (name, value) in cpu::process_fields() {
        section = section.field(name, value)?;
    }
    let stats = redisai_engine::exec::queue_stats();
    for (device, queue) in &stats {
        // RedisAI named a queue by the device string given (`CPU`, `GPU`); a ':' would
        // break INFO's `name:value` lines, so another index reads `CPU_1`.
        let kind = match device.kind {
            redisai_engine::device::DeviceKind::Cpu => "CPU",
            redisai_engine::device::DeviceKind::Gpu => "GPU",
        };
        let queue_name = match device.index {
            None | Some(0) => kind.to_owned(),
            Some(index) => format!("{kind}_{index}"),
        };
        for index in 0..queue.threads {
            let thread_name = format!("ai-{device}-{index}");
            section = section.field(
                &format!("queue_{queue_name}_bthread_n{}_used_cpu_total", index + 1),
                cpu::named_thread_seconds(&thread_name).unwrap_or_else(|| "N/A".to_owned()),
            )?;
        }
    }
    section = section.field("count", stats.len().to_string())?;
    for (device, queue) in stats {
        section = section.field(
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
    let loader = redisai_engine::exec::loader::stats();
    section = section.field(
        "loader",
        format!(
            "pending={},loading={}",
            loader.pending,
            u8::from(loader.busy)
        ),
    )?;
    section.build_section()?.build_info()?;
    Ok(())
}

/// CPU times in RedisAI's `seconds.micros` form.
mod cpu {
    fn seconds(tv: libc::timeval) -> String {
        format!("{}.{:06}", tv.tv_sec, tv.tv_usec)
    }

    fn usage(who: libc::c_int) -> Option<libc::rusage> {
        // SAFETY: rusage is plain old data; getrusage only writes it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid `who` and a valid pointer.
        (unsafe { libc::getrusage(who, &mut usage) } == 0).then_some(usage)
    }

    /// The process's, its children's and the calling (main) thread's CPU times.
    pub fn process_fields() -> Vec<(&'static str, String)> {
        // INFO runs on Redis's main thread.
        let sources = [
            (libc::RUSAGE_SELF, "self_used_cpu_sys", "self_used_cpu_user"),
            (
                libc::RUSAGE_CHILDREN,
                "children_used_cpu_sys",
                "children_used_cpu_user",
            ),
            (
                libc::RUSAGE_THREAD,
                "main_thread_used_cpu_sys",
                "main_thread_used_cpu_user",
            ),
        ];
        let mut fields = Vec::new();
        for (who, sys, user) in sources {
            let measured = usage(who);
            let shown = |time: fn(&libc::rusage) -> libc::timeval| {
                measured.map_or_else(|| "N/A".to_owned(), |u| seconds(time(&u)))
            };
            fields.push((sys, shown(|u| u.ru_stime)));
            fields.push((user, shown(|u| u.ru_utime)));
        }
        fields
    }

    /// CPU time of this process's thread named `name` (a queue's worker), read from its
    /// per-thread CPU clock, as RedisAI read its workers'.
    pub fn named_thread_seconds(name: &str) -> Option<String> {
        // Thread names are cut to 15 bytes by the kernel.
        let wanted = &name.as_bytes()[..name.len().min(15)];
        let tasks = std::fs::read_dir("/proc/self/task").ok()?;
        for task in tasks.flatten() {
            let comm = std::fs::read(task.path().join("comm")).unwrap_or_default();
            if comm.strip_suffix(b"\n").unwrap_or(&comm) != wanted {
                continue;
            }
            let tid: libc::pid_t = task.file_name().to_str()?.parse().ok()?;
            // The kernel's per-thread CPU clock id (what pthread_getcpuclockid gives):
            // the thread id, inverted and shifted, with the "per thread" and "sched" bits.
            let clock: libc::clockid_t = ((!tid) << 3) | 6;
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid pointer; a clock id for a gone thread fails cleanly.
            if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
                return None;
            }
            return Some(format!("{}.{:06}", now.tv_sec, now.tv_nsec / 1000));
        }
        None
    }
}
