//! INTRA_OP_PARALLELISM reaches LiteRT's CPU accelerator: each model's XNNPACK thread
//! pool has the threads asked for. One test in its own binary, so that no other test
//! starts threads while it counts them.

mod common;

use common::{backend_with, f32s, load, run, Input, Settings};

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

#[test]
fn models_get_the_threads_asked_for() {
    let settings = Settings::default();
    let backend = backend_with(settings.clone());
    let x: Vec<f32> = (0..64 * 4).map(|i| (i % 7) as f32).collect();
    let input = [Input::f32(&[64, 4], &x)];
    let mut models = Vec::new();
    let mut load_with = |intra: i64| -> usize {
        Settings::set(&settings.intra, intra);
        let before = thread_count();
        let model = load(&backend, "mlp.tflite");
        let out = run(&backend, &model, &input, 1);
        assert_eq!(out[0].shape, [64, 3]);
        assert_eq!(f32s(&out[0].data)[..3], [1.265625, 0.53125, -0.046875]);
        let added = thread_count() - before;
        models.push(model);
        added
    };
    // The calling thread is one of the pool's threads: N threads add N - 1.
    assert_eq!(load_with(1), 0);
    assert_eq!(load_with(4), 3);
    assert_eq!(load_with(2), 1);
    drop(models);
}
