//! BACKEND_MEMORY_LIMIT bounds TensorFlow's tensors (src/ffi/memory_shim.c, interposed in
//! TensorFlow's link namespace): a run whose intermediate tensor is 2 GB (BroadcastTo of a
//! one-element input to [2^29] floats, then Sum) fails under 256 MB with an error, the
//! process lives and the memory comes back; the namespace's counters follow loads and
//! frees. One test in its own binary, since the counters belong to the process.

mod common;

use common::{backend_with, f32s, le_bytes, views, Input, Settings};
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::graph_def::{
    attr_type, field_bytes, field_varint, graph, node, placeholder, DT_FLOAT,
};

const DT_INT32: u64 = 3;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// big = BroadcastTo(x, shape); y = Sum(big, axis).
fn broadcast_sum() -> Vec<u8> {
    graph(
        &[
            placeholder("x", DT_FLOAT),
            placeholder("shape", DT_INT32),
            placeholder("axis", DT_INT32),
            node(
                "big",
                "BroadcastTo",
                &["x", "shape"],
                &[("T", attr_type(DT_FLOAT)), ("Tidx", attr_type(DT_INT32))],
            ),
            node(
                "y",
                "Sum",
                &["big", "axis"],
                &[
                    ("T", attr_type(DT_FLOAT)),
                    ("Tidx", attr_type(DT_INT32)),
                    // AttrValue b (5) = false
                    ("keep_dims", field_varint(5, 0)),
                ],
            ),
        ],
        &[],
    )
}

fn inputs(n: i32) -> [Input; 3] {
    [
        Input::f32(&[1], &[1.0]),
        Input::new(DType::Int32, &[1], le_bytes(&[n])),
        Input::new(DType::Int32, &[1], le_bytes(&[0i32])),
    ]
}

#[test]
fn a_2gb_intermediate_is_refused_under_256_mb() {
    let settings = Settings::default();
    Settings::set(&settings.memory_mb, 256);
    let backend = backend_with(settings.clone());
    let before = backend
        .memory_stats()
        .expect("the memory shim is in the namespace");
    eprintln!("before: {before:?}");

    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let model = backend
        .load(
            &broadcast_sum(),
            &names(&["x", "shape", "axis"]),
            &names(&["y"]),
        )
        .map_err(|e| e.to_string())
        .expect("load");
    let loaded = backend.memory_stats().expect("stats");
    eprintln!("loaded: {loaded:?}");
    assert_eq!(loaded.limit, 256_000_000);

    let rss_before = rss_bytes();
    let err = backend
        .run(&model, 0, &views(&inputs(1 << 29)), 1)
        .expect_err("a 2 GB intermediate under 256 MB");
    eprintln!("2 GB run: {}", err);
    assert!(
        err.to_string().starts_with(
            "TF memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is 256 MB): "
        ) && err.to_string().contains("OOM when allocating tensor"),
        "{}",
        err
    );
    let after = backend.memory_stats().expect("stats");
    eprintln!(
        "after the refused run: {after:?}, RSS {rss_before} -> {}",
        rss_bytes()
    );
    assert!(after.refused > before.refused, "{after:?}");
    assert!(
        err.to_string().contains("by allocator cpu"),
        "the plain CPU allocator: {}",
        err
    );
    assert!(after.peak < 256_000_000, "{after:?}");
    assert!(rss_bytes() < rss_before + 100_000_000);

    // 40 MB passes under the same limit, and what it allocated is freed after it.
    let out = backend
        .run(&model, 0, &views(&inputs(10_000_000)), 1)
        .map_err(|e| e.to_string())
        .expect("a 40 MB intermediate");
    assert_eq!(f32s(&out[0].data), vec![10_000_000.0]);
    let ran = backend.memory_stats().expect("stats");
    eprintln!("after the 40 MB run: {ran:?}");
    assert!(ran.peak >= 40_000_000, "{ran:?}");
    assert!(ran.held < after.held + 5_000_000, "{after:?} -> {ran:?}");

    // A lower limit set later binds as well: 100 MB more is refused under 100 MB.
    Settings::set(&settings.memory_mb, 100);
    let err = backend
        .run(&model, 0, &views(&inputs(25_000_000)), 1)
        .expect_err("100 MB more over 100 MB");
    eprintln!("100 MB limit: {}", err);
    assert!(
        err.to_string().starts_with(
            "TF memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is 100 MB): "
        ),
        "{}",
        err
    );
    let lowered = backend.memory_stats().expect("stats");
    eprintln!("after the 100 MB refusal: {lowered:?}");
    assert!(lowered.refused > ran.refused, "{lowered:?}");
    assert!(lowered.held <= ran.held + 1_000_000, "{lowered:?}");
    Settings::set(&settings.memory_mb, 256);

    drop(model);

    // The counters follow a model's load and free: 10 MB of weights (a Const).
    Settings::set(&settings.memory_mb, 256);
    let weights: Vec<u8> = le_bytes(&vec![0.5f32; 2_500_000]);
    let shape = field_bytes(2, field_bytes(2, field_varint(1, 2_500_000)));
    let tensor = [field_varint(1, DT_FLOAT), shape, field_bytes(4, &weights)].concat();
    let heavy = graph(
        &[node(
            "w",
            "Const",
            &[],
            &[
                ("dtype", attr_type(DT_FLOAT)),
                ("value", field_bytes(8, tensor)),
            ],
        )],
        &[],
    );
    let before_load = backend.memory_stats().expect("stats");
    let heavy = backend
        .load(&heavy, &[], &names(&["w"]))
        .map_err(|e| e.to_string())
        .expect("load 10 MB of weights");
    let held = backend.memory_stats().expect("stats");
    drop(heavy);
    let freed = backend.memory_stats().expect("stats");
    eprintln!("10 MB model: {before_load:?} -> loaded {held:?} -> freed {freed:?}");
    assert!(held.held >= before_load.held + 10_000_000, "{held:?}");
    assert!(freed.held <= before_load.held + 1_000_000, "{freed:?}");
    // And the server-side limit can be lifted.
    Settings::set(&settings.memory_mb, 0);
}
