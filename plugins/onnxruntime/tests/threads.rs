//! INTRA_OP_PARALLELISM and INTER_OP_PARALLELISM reach ONNX Runtime: each session's pools
//! have the threads asked for. One test in its own binary, so that no other test starts
//! threads while it counts them.

mod common;

use common::{backend_with, f32s, model_bytes, views, Input, Settings};
use redisai_plugin_testkit::ok;

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

#[test]
fn sessions_get_the_threads_asked_for() {
    let settings = Settings::default();
    let backend = backend_with(settings.clone());
    let blob = model_bytes("two_outputs.onnx");
    let input = [Input::f32(&[1, 2], &[1.0, 2.0])];
    let mut models = Vec::new();
    let mut load_with = |intra: i64, inter: i64| -> usize {
        Settings::set(&settings.intra, intra);
        Settings::set(&settings.inter, inter);
        let before = thread_count();
        let model = ok(backend.load(&blob), "load");
        let out = ok(backend.run(&model, 0, &views(&input), 2), "run");
        assert_eq!(f32s(&out[1].data), [1.0, 4.0]);
        let added = thread_count() - before;
        models.push(model);
        added
    };
    // The calling thread is one of the intra-op threads: N threads add N - 1.
    assert_eq!(load_with(1, 0), 0);
    assert_eq!(load_with(4, 0), 3);
    assert_eq!(load_with(1, 1), 0);
    // Inter-op parallelism above 1 turns on parallel execution, with its own pool.
    assert_eq!(load_with(1, 3), 2);
    assert_eq!(load_with(2, 3), 3);
    drop(models);
}
