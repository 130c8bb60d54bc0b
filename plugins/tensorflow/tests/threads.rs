//! INTRA_OP_PARALLELISM and INTER_OP_PARALLELISM reach TensorFlow through the session's
//! ConfigProto. TensorFlow's pools are process-wide: the first session sizes them and later
//! sessions share them. One test in its own binary, so that no other test starts threads
//! (or the pools) while it counts.

mod common;

use common::{backend_with, f32s, load, run, Input};
use redisai_tensorflow::runtime::call_thread_ids;

/// This process's threads: (kernel id, name).
fn threads() -> Vec<(i32, String)> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let id = entry.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            Some((id, name.trim_end().to_owned()))
        })
        .collect()
}

fn count(threads: &[(i32, String)], name: &str) -> usize {
    threads.iter().filter(|(_, n)| n == name).count()
}

/// The intra-op (Eigen) pool's threads are unnamed, so they carry the name of the thread
/// that made them: one of the backend's `tf-call` threads, whose own ids are known.
fn intra_op_threads(threads: &[(i32, String)]) -> usize {
    let callers = call_thread_ids();
    threads
        .iter()
        .filter(|(id, name)| name == "tf-call" && !callers.contains(id))
        .count()
}

#[test]
fn the_first_session_sizes_the_pools() {
    let settings = common::Settings::default();
    common::Settings::set(&settings.intra, 2);
    common::Settings::set(&settings.inter, 5);
    let backend = backend_with(settings.clone());
    let before = threads();
    assert_eq!(count(&before, "tf_Compute"), 0);
    assert_eq!(intra_op_threads(&before), 0);
    let model = load(&backend, "mul.pb", &["a", "b"], &["mul"]);
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[1], &[3.0]), Input::f32(&[1], &[4.0])],
        1,
    );
    assert_eq!(f32s(&out[0].data), [12.0]);
    let after = threads();
    // The inter-op pool's threads are named tf_Compute.
    assert_eq!(count(&after, "tf_Compute"), 5, "{after:?}");
    assert_eq!(intra_op_threads(&after), 2, "{after:?}");

    // Later sessions share the pools, whatever the settings say then.
    common::Settings::set(&settings.intra, 3);
    common::Settings::set(&settings.inter, 3);
    let second = load(&backend, "mlp.pb", &["x"], &["y"]);
    run(
        &backend,
        &second,
        &[Input::f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0])],
        1,
    );
    let later = threads();
    assert_eq!(count(&later, "tf_Compute"), 5);
    assert_eq!(intra_op_threads(&later), 2);
}
