//! Soak: a bounded run of tensor and model commands (stores, replacements, executions,
//! DAGs, deletes over a bounded key set) with the server's RSS sampled every second.
//! After warm-up (the first quarter) RSS must stay flat: the last samples may not exceed
//! the warm-up level by more than 10% + 8 MiB. Also the server's own accounting
//! (`used_memory`) returns to its starting level after FLUSHALL.
//!
//! Ignored in `cargo test`; `scripts/stress` runs it (`--soak SECONDS`, default 120).
//! Length: `REDISAI_SOAK_SECS`. With `REDIS_SERVER` set to a valgrind wrapper the same
//! workload runs under valgrind (`scripts/stress --valgrind`).

use std::time::{Duration, Instant};

use redisai_example_c_plugins::{EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN};
use redisai_tests::hardening::{
    backend_built, env_usize, f32_blob, info_field, model_bytes, rss_kib, server_pid, Rng,
};
use redisai_tests::redis::Connection;
use redisai_tests::{run, run_str, Server, ServerConfig};

fn workload_step(c: &mut Connection, rng: &mut Rng, models: &[(&str, Vec<u8>)]) {
    let k = rng.below(50);
    match rng.below(10) {
        0..=2 => {
            let n = 1 + rng.below(4096);
            let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let _ = run(
                c,
                &[
                    b"AI.TENSORSET",
                    format!("t{k}").as_bytes(),
                    b"FLOAT",
                    n.to_string().as_bytes(),
                    b"BLOB",
                    &f32_blob(&values),
                ],
            );
        }
        3 => {
            let (backend, blob) = &models[rng.below(models.len())];
            let _ = run(
                c,
                &[
                    b"AI.MODELSTORE",
                    format!("m{}", k % 5).as_bytes(),
                    backend.as_bytes(),
                    b"CPU",
                    b"BLOB",
                    blob,
                ],
            );
        }
        4..=5 => {
            let _ = run_str(c, "AI.TENSORSET x FLOAT 2 VALUES 1 2");
            let _ = run_str(
                c,
                &format!("AI.MODELEXECUTE m{} INPUTS 2 x x OUTPUTS 1 out{k}", k % 5),
            );
        }
        6 => {
            let _ = run_str(c, &format!("AI.DAGEXECUTE PERSIST 1 d{k} |> AI.TENSORSET a FLOAT 2 VALUES 1 {k} |> AI.MODELEXECUTE m{} INPUTS 2 a a OUTPUTS 1 d{k} |> AI.TENSORGET d{k} VALUES", k % 5));
        }
        7 => {
            let _ = run_str(c, &format!("AI.TENSORGET t{k} BLOB"));
        }
        8 => {
            let _ = run_str(c, &format!("DEL t{k} out{k} d{k}"));
        }
        _ => {
            let _ = run_str(c, &format!("AI.MODELDEL m{}", k % 5));
        }
    }
}

fn models() -> Vec<(&'static str, Vec<u8>)> {
    let mut models = vec![("EXAMPLE", b"add".to_vec())];
    if backend_built("redisai_onnxruntime") {
        models.push(("ONNX", model_bytes("onnx", "add_any_rank.onnx")));
    }
    if backend_built("redisai_tflite") {
        models.push(("TFLITE", model_bytes("tflite", "add.tflite")));
    }
    models
}

#[test]
#[ignore = "minutes long: run by scripts/stress"]
fn rss_is_flat_after_warm_up() {
    let secs = env_usize("REDISAI_SOAK_SECS", 120) as u64;
    let mut rng = Rng::from_env("soak");
    let mut server =
        Server::start_with(ServerConfig::default().module_args(&["THREADS_PER_QUEUE", "2"]));
    let mut c = server.client();
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    )
    .expect("LOADBACKEND");
    let models = models();
    let pid = server_pid(&mut c);
    let baseline_used = info_field(&mut c, "memory", "used_memory").expect("used_memory");
    let start = Instant::now();
    let mut samples: Vec<u64> = Vec::new();
    let mut next_sample = start;
    let mut commands = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        workload_step(&mut c, &mut rng, &models);
        commands += 1;
        if Instant::now() >= next_sample {
            if let Some(rss) = rss_kib(pid) {
                samples.push(rss);
            }
            next_sample += Duration::from_secs(1);
        }
    }
    // Under valgrind RSS is valgrind's own: only the workload and a clean exit count.
    let under_valgrind = std::env::var_os("REDISAI_UNDER_VALGRIND").is_some();
    run_str(&mut c, "FLUSHALL").expect("FLUSHALL");
    let used = info_field(&mut c, "memory", "used_memory").expect("used_memory");
    // A clean exit before any assertion (valgrind writes its leak report then).
    server.shutdown();
    eprintln!("soak: {secs} s, {commands} commands; used_memory {baseline_used} at start, {used} after FLUSHALL");
    if under_valgrind {
        return;
    }
    assert!(samples.len() >= 4, "RSS samples: {samples:?}");
    let warm = samples.len() / 4;
    let warm_level = *samples[..=warm].iter().max().unwrap_or(&0);
    let tail = &samples[samples.len() - samples.len().div_ceil(10)..];
    let end_level = *tail.iter().max().unwrap_or(&0);
    let drift_kib = end_level as i64 - warm_level as i64;
    eprintln!(
        "soak: RSS warm-up {warm_level} KiB -> end {end_level} KiB (drift {drift_kib} KiB, peak {} KiB)",
        samples.iter().max().unwrap_or(&0)
    );
    assert!(
        end_level <= warm_level + warm_level / 10 + 8 * 1024,
        "RSS grew after warm-up: {warm_level} -> {end_level} KiB ({samples:?})"
    );
    // Everything the module allocated through Redis came back with FLUSHALL.
    assert!(
        used < baseline_used + 2 * 1024 * 1024,
        "used_memory {baseline_used} -> {used}"
    );
}
