//! Outputs in memory the host lends (ABI minor 5): through the C table, with a host that
//! lends, every output comes back in lent memory (written there by ONNX Runtime when
//! the shape is known before the run, copied there once otherwise) with the values it
//! has without one. In its own binary: `init` makes the plugin's one instance.

mod common;

use common::onnx::{elem, model, Node, Ty};
use common::{backend, ensure_runtime_lib, f32s, views, Input};
use redisai_onnxruntime::redisai_plugin_entry;
use redisai_plugin_testkit::host::HOST;
use redisai_plugin_testkit::table::{Model, Plugin, RunOptions, CPU};

fn relu(input: Option<Vec<i64>>, output: Option<Vec<i64>>) -> Vec<u8> {
    model(
        &[Node("Relu", &["x"], &["y"])],
        &[("x", Ty::Tensor(elem::FLOAT, input))],
        &[("y", Ty::Tensor(elem::FLOAT, output))],
    )
}

/// The input's shape: 64 KiB of FLOAT, enough for the backend to pre-allocate.
const ROWS: i64 = 2;
const COLS: i64 = 8192;

fn values() -> Vec<f32> {
    (0..ROWS * COLS).map(|i| (i % 7) as f32 - 3.0).collect()
}

fn relu_of_values() -> Vec<f32> {
    values().iter().map(|v| v.max(0.0)).collect()
}

fn plugin() -> Plugin {
    ensure_runtime_lib();
    // SAFETY: the plugin's entry point returns its static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    assert_eq!(plugin.init(&HOST), Ok(()));
    plugin
}

/// Runs `model` on a [ROWS, COLS] input (with `options`) and checks the one output:
/// Relu's values, in lent memory.
fn check_lent(model: &Model, options: RunOptions<'_>, what: &str) {
    let input = [Input::f32(&[ROWS, COLS], &values())];
    let outputs = model.run_with(options, &input, 1).expect(what);
    assert_eq!(outputs[0].shape, [ROWS, COLS], "{what}");
    assert_eq!(f32s(&outputs[0].data), relu_of_values(), "{what}");
    assert_eq!(model.last_run_lent(), [true], "{what}: not in lent memory");
}

#[test]
fn outputs_are_written_into_lent_memory() {
    let plugin = plugin();
    let load = |blob: Vec<u8>| plugin.load(CPU, &blob, &[], &[]).expect("loads");
    for (what, blob) in [
        (
            "a static output shape",
            relu(Some(vec![ROWS, COLS]), Some(vec![ROWS, COLS])),
        ),
        (
            "an output shape named after the input's",
            relu(Some(vec![-1, COLS]), Some(vec![-1, COLS])),
        ),
        (
            "an output of unknown shape (copied once)",
            relu(Some(vec![ROWS, COLS]), None),
        ),
    ] {
        let model = load(blob);
        check_lent(&model, RunOptions::default(), what);
        // With a timeout the run goes through ONNX Runtime's run options.
        check_lent(&model, RunOptions::timeout(60_000), what);
    }

    // A model declaring an output shape its run does not give: ONNX Runtime refuses the
    // pre-allocated buffer, the run is made again without, and from then on the model
    // does not pre-allocate. Same values as without a host that lends.
    let wrong = load(relu(Some(vec![ROWS, COLS]), Some(vec![COLS, ROWS])));
    check_lent(&wrong, RunOptions::default(), "a wrongly declared shape");
    check_lent(
        &wrong,
        RunOptions::default(),
        "a wrongly declared shape, again",
    );
}

#[test]
fn outside_a_call_of_the_host_nothing_is_lent() {
    // The host lends only during its calls: the backend, called directly, keeps its own.
    plugin();
    let backend = backend();
    let model = backend
        .load(&relu(Some(vec![ROWS, COLS]), Some(vec![ROWS, COLS])))
        .expect("loads");
    let input = [Input::f32(&[ROWS, COLS], &values())];
    let outputs = backend.run(&model, 0, &views(&input), 1).expect("runs");
    assert_eq!(f32s(&outputs[0].data), relu_of_values());
    assert!(!outputs[0].data.is_lent());
}

#[test]
fn a_host_that_refuses_the_bytes_gets_an_out_of_memory_error_and_no_copy() {
    // The core refuses loans past a run's budget under `maxmemory`; the backend then
    // fails the run for memory rather than copying the output into memory of its own
    // that the core would refuse anyway. A pre-allocation it is refused only leaves the
    // outputs to ONNX Runtime (a declared shape may be wrong): the copy is what fails.
    let plugin = plugin();
    let load = |blob: Vec<u8>| plugin.load(CPU, &blob, &[], &[]).expect("loads");
    let input = [Input::f32(&[ROWS, COLS], &values())];
    let output_bytes = (ROWS * COLS * 4) as usize;
    for (what, blob) in [
        (
            "a static output shape",
            relu(Some(vec![ROWS, COLS]), Some(vec![ROWS, COLS])),
        ),
        (
            "an output of unknown shape",
            relu(Some(vec![ROWS, COLS]), None),
        ),
    ] {
        let model = load(blob);
        redisai_plugin_testkit::host::refuse_loans_over(output_bytes - 1);
        let refused = model.run(&input, 1);
        redisai_plugin_testkit::host::refuse_loans_over(usize::MAX);
        let error = refused.expect_err(what);
        assert!(
            error.contains(&format!("the host refused {output_bytes} bytes")),
            "{what}: {error}"
        );
        check_lent(&model, RunOptions::default(), what);
    }
}
