//! TensorFlow's threads that end (MatchingFiles runs a temporary `ForEach` thread pool)
//! must leave the host's allocator intact. Inside redis-server, whose `malloc` is jemalloc,
//! such a thread used to leave jemalloc's per-thread state registered in jemalloc's lists
//! after it ended: TensorFlow's dynamic TLS is allocated by the dynamic loader with the
//! host's `malloc`, jemalloc ties its per-thread state to a key of the host's libc, and the
//! namespace's libc ran no destructor of the host's keys (see src/ffi/namespace.rs). The
//! next allocation on a new thread crashed in jemalloc (SIGSEGV after one run).
//!
//! The test runs itself again in a child process with jemalloc preloaded as the process's
//! `malloc` (as Debian's redis-server has it), when the system has libjemalloc.so.2, and
//! runs the graph there with the load policy bypassed (the policy refuses MatchingFiles).

mod common;

use std::process::Command;

use common::{backend, load, run, Input};
use redisai_plugin_testkit::graph_def;
use redisai_tensorflow::runtime::thread_stacks;

const JEMALLOC: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
];

const CHILD: &str = "REDISAI_TF_THREAD_EXIT_CHILD";

#[test]
fn threads_that_end_leave_jemalloc_intact() {
    if std::env::var_os(CHILD).is_some() {
        return thread_ending_runs();
    }
    common::ensure_runtime_lib();
    let Some(jemalloc) = JEMALLOC.iter().find(|p| std::path::Path::new(p).exists()) else {
        eprintln!("no libjemalloc.so.2 on this system: running with the system's malloc");
        return thread_ending_runs();
    };
    let exe = std::env::current_exe().expect("current exe");
    let status = Command::new(exe)
        .args([
            "--exact",
            "threads_that_end_leave_jemalloc_intact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("LD_PRELOAD", jemalloc)
        .status()
        .expect("the child test process starts");
    assert!(status.success(), "the child process: {status}");
}

/// MatchingFiles 100 times (each run starts and ends a pool of threads), then more
/// TensorFlow work on new and old threads.
fn thread_ending_runs() {
    let backend = backend();
    let blob = graph_def::matching_files();
    let model = backend
        .load_without_policy_for_tests(&blob, &["fname".to_owned()], &["files".to_owned()])
        .expect("MatchingFiles loads without the policy");
    let pattern = format!("{}/*", env!("CARGO_MANIFEST_DIR"));
    for _ in 0..100 {
        let out = run(
            &backend,
            &model,
            &[Input::strings(&[], &[pattern.as_bytes()])],
            1,
        );
        assert!(
            String::from_utf8_lossy(&out[0].data).contains("Cargo.toml"),
            "{:?}",
            out[0].shape
        );
    }
    // Each run's pool threads ran on stacks of the threads shim (never in glibc's stack
    // cache), unmapped once joined.
    let (made, unmapped) = thread_stacks().expect("the threads shim is in use");
    assert!(made >= 100, "{made} threads made by the shim");
    assert!(unmapped >= 100, "{unmapped} stacks unmapped");
    let mlp = load(&backend, "mlp.pb", &["x"], &["y"]);
    for _ in 0..100 {
        run(
            &backend,
            &mlp,
            &[Input::f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0])],
            1,
        );
    }
    // Allocations on fresh host threads go through jemalloc's thread list too.
    let threads: Vec<_> = (0..8)
        .map(|i| std::thread::spawn(move || vec![i as u8; 1 << 16].len()))
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("thread"), 1 << 16);
    }
}
