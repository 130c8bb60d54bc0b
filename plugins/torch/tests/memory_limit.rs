//! BACKEND_MEMORY_LIMIT bounds libtorch's CPU tensor memory (shim/memory.cpp): a run whose
//! intermediate tensor would pass it fails with an error, the process lives, and the
//! memory comes back; the plugin's counters (ABI minor 3) follow loads and frees. One test
//! in its own binary, since the counters belong to the process.

mod common;

use common::{load, plugin, run, Tensor};
use redisai_plugin_api::abi::{
    RaiConfigKey, RaiDevice, RaiDeviceKind, RaiMemoryStats, RAI_MEMORY_UNKNOWN,
};
use redisai_plugin_api::sdk::{DType, Device, DeviceKind, TensorRef};
use redisai_plugin_testkit::host::set_config;
use redisai_torch::make_module;

fn stats() -> RaiMemoryStats {
    let mut stats = RaiMemoryStats {
        struct_size: std::mem::size_of::<RaiMemoryStats>(),
        held_bytes: RAI_MEMORY_UNKNOWN,
        peak_bytes: RAI_MEMORY_UNKNOWN,
        limit_bytes: RAI_MEMORY_UNKNOWN,
    };
    let fill = plugin()
        .api()
        .memory_stats
        .expect("memory_stats (ABI minor 3)");
    // SAFETY: a valid struct with its size set.
    unsafe { fill(&mut stats) };
    stats
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("kB");
    kb * 1024
}

#[test]
fn memory_limit_stops_a_2gb_intermediate_and_counters_follow_models() {
    set_config(RaiConfigKey::BackendMemoryLimitMb, 256);
    let _ = RaiDevice {
        kind: RaiDeviceKind::Cpu,
        id: 0,
    };
    let before = stats();
    eprintln!("before: {before:?}");
    assert_ne!(before.held_bytes, RAI_MEMORY_UNKNOWN);

    // 4 MB of weights (10^6 floats).
    let weights: Vec<u8> = vec![0.5f32; 1_000_000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let w = TensorRef {
        dtype: DType::Float,
        device: Device {
            kind: DeviceKind::Cpu,
            id: 0,
        },
        shape: &[1_000_000],
        data: &weights,
    };
    let source = "def forward(self, x: Tensor, n: int) -> Tensor:\n    big = x.expand([n]).contiguous()\n    return (big.sum() + self.w.sum()).reshape([1])\n";
    let source = source.replace(", n: int", "").replace("[n]", "[536870912]");
    let blob = make_module(&source, &[("w", w)]).expect("make the 2 GB model");
    let small_source = source.replace("536870912", "25000000");
    let small_blob = make_module(&small_source, &[("w", w)]).expect("make the 100 MB model");

    let rss_before = rss_bytes();
    let model = load(&blob).expect("load under 256 MB");
    let loaded = stats();
    eprintln!("loaded: {loaded:?}");
    let model_bytes = {
        let f = plugin().api().model_memory.expect("model_memory");
        // SAFETY: a live model of this plugin.
        unsafe { f(model.as_raw()) }
    };
    eprintln!("model_memory: {model_bytes}");
    assert_eq!(model_bytes, 4_000_000);
    assert!(
        loaded.held_bytes >= before.held_bytes + 4_000_000,
        "{before:?} -> {loaded:?}"
    );
    assert_eq!(loaded.limit_bytes, 256_000_000);

    let x = Tensor::f32(&[1], &[1.0]);
    let err = run(&model, std::slice::from_ref(&x), 1).expect_err("2 GB intermediate");
    eprintln!("error: {err}");
    assert!(
        err.contains("TORCH memory limit exceeded") && err.contains("256 MB"),
        "{err}"
    );
    let after_error = stats();
    eprintln!("after the refused run: {after_error:?}");
    assert_eq!(after_error.held_bytes, loaded.held_bytes, "nothing leaked");
    assert!(after_error.peak_bytes < 256_000_000);
    assert!(
        rss_bytes() < rss_before + 200_000_000,
        "RSS {} -> {}",
        rss_before,
        rss_bytes()
    );

    // A run that needs 100 MB passes under the same limit.
    let small = load(&small_blob).expect("load the small model");
    let out = run(&small, std::slice::from_ref(&x), 1).expect("100 MB run");
    let value = out[0].to_f32()[0];
    assert!(
        (value - 25_500_000.0).abs() / 25_500_000.0 < 1e-3,
        "{value}"
    );
    let after_small = stats();
    eprintln!("after the 100 MB run: {after_small:?}");
    assert!(after_small.peak_bytes >= 100_000_000);

    // Without a limit the big run passes (when the machine has the memory): not tried
    // here. Freeing the models gives their weights back.
    drop(small);
    drop(model);
    let freed = stats();
    eprintln!("freed: {freed:?}");
    assert!(
        freed.held_bytes <= before.held_bytes + 4_096,
        "{before:?} -> {freed:?}"
    );

    // Weights count too: 4 MB of them do not load under 2 MB, and nothing is kept.
    set_config(RaiConfigKey::BackendMemoryLimitMb, 2);
    let err = load(&blob).expect_err("4 MB of weights under 2 MB");
    eprintln!("2 MB load: {err}");
    assert!(err.contains("TORCH memory limit exceeded"), "{err}");
    assert_eq!(stats().held_bytes, freed.held_bytes);
    set_config(RaiConfigKey::BackendMemoryLimitMb, 0);
}
