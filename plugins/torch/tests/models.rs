//! TorchScript models through the exported C table: every dtype, several outputs, names,
//! corrupt blobs and bad inputs (errors with libtorch's message, never an abort), and
//! concurrent runs of one model.

mod common;

use common::Model;
use common::{load, model_bytes, plugin, run, Tensor};
use redisai_plugin_api::abi::RAI_PLUGIN_FLAG_CONCURRENT_RUN;
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::rng::Rng;

#[test]
fn table_describes_the_backend() {
    let plugin = plugin();
    let api = plugin.api();
    assert_eq!(plugin.name(), c"TORCH");
    assert_eq!(
        plugin.runtime_version().to_str(),
        Ok(redisai_torch::TORCH_VERSION)
    );
    assert_eq!(redisai_torch::torch_version(), redisai_torch::TORCH_VERSION);
    assert!(api.script_load.is_some() && api.script_run.is_some());
    assert_eq!(api.dtype_mask & (1 << DType::String as u32), 0, "no STRING");
}

/// (dtype, a, b, a + b), values as little-endian bytes.
type AddCase = (DType, Vec<u8>, Vec<u8>, Vec<u8>);

/// Two values per dtype.
fn add_cases() -> Vec<AddCase> {
    fn bytes<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
        values.iter().flat_map(|v| to(*v)).collect()
    }
    vec![
        (
            DType::Float,
            bytes(&[1.5f32, -2.0], f32::to_le_bytes),
            bytes(&[0.25f32, 4.0], f32::to_le_bytes),
            bytes(&[1.75f32, 2.0], f32::to_le_bytes),
        ),
        (
            DType::Double,
            bytes(&[1.5f64, -2.0], f64::to_le_bytes),
            bytes(&[0.25f64, 4.0], f64::to_le_bytes),
            bytes(&[1.75f64, 2.0], f64::to_le_bytes),
        ),
        (
            DType::Int8,
            bytes(&[-100i8, 7], i8::to_le_bytes),
            bytes(&[-20i8, 3], i8::to_le_bytes),
            bytes(&[-120i8, 10], i8::to_le_bytes),
        ),
        (
            DType::Int16,
            bytes(&[-30000i16, 7], i16::to_le_bytes),
            bytes(&[-2000i16, 3], i16::to_le_bytes),
            bytes(&[-32000i16, 10], i16::to_le_bytes),
        ),
        (
            DType::Int32,
            bytes(&[1 << 30, -7], i32::to_le_bytes),
            bytes(&[5i32, 3], i32::to_le_bytes),
            bytes(&[(1 << 30) + 5, -4], i32::to_le_bytes),
        ),
        (
            DType::Int64,
            bytes(&[1i64 << 40, -7], i64::to_le_bytes),
            bytes(&[5i64, 3], i64::to_le_bytes),
            bytes(&[(1i64 << 40) + 5, -4], i64::to_le_bytes),
        ),
        (DType::Uint8, vec![200, 1], vec![55, 2], vec![255, 3]),
        (DType::Bool, vec![1, 0], vec![0, 0], vec![1, 0]),
    ]
}

#[test]
fn every_dtype_round_trips_through_add() {
    let model = load(&model_bytes("add.pt")).expect("load add.pt");
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["output_0"]);
    for (dtype, a, b, sum) in add_cases() {
        let out = run(
            &model,
            &[Tensor::new(dtype, &[2], a), Tensor::new(dtype, &[2], b)],
            1,
        )
        .unwrap_or_else(|err| panic!("{dtype:?}: {err}"));
        assert_eq!(out, [Tensor::new(dtype, &[2], sum)], "{dtype:?}");
    }
    // Scalars and empty tensors keep their shapes.
    let out = run(
        &model,
        &[Tensor::f32(&[], &[2.0]), Tensor::f32(&[], &[3.0])],
        1,
    )
    .expect("scalar");
    assert_eq!(out, [Tensor::f32(&[], &[5.0])]);
    let out = run(
        &model,
        &[Tensor::f32(&[0, 3], &[]), Tensor::f32(&[0, 3], &[])],
        1,
    )
    .expect("empty");
    assert_eq!(out, [Tensor::f32(&[0, 3], &[])]);
}

#[test]
fn uint16_and_string_are_clear_errors_where_unsupported() {
    let model = load(&model_bytes("add.pt")).expect("load add.pt");
    let a = Tensor::new(DType::Uint16, &[2], vec![1, 0, 2, 0]);
    // libtorch 2.13 has uint16 tensors but no add kernel for them: its own message.
    match run(&model, &[a.clone(), a], 1) {
        Ok(out) => assert_eq!(out, [Tensor::new(DType::Uint16, &[2], vec![2, 0, 4, 0])]),
        Err(err) => assert!(err.contains("UInt16"), "{err}"),
    }
    let s = Tensor::new(DType::String, &[1], b"hi\0".to_vec());
    let err = run(&model, &[s.clone(), s], 1).expect_err("STRING");
    assert_eq!(err, "the TORCH backend does not support STRING tensors");
}

#[test]
fn two_outputs_int64_and_bool_models() {
    let model = load(&model_bytes("two_outputs.pt")).expect("two_outputs.pt");
    assert_eq!(model.output_names(), ["output_0", "output_1"]);
    let out = run(
        &model,
        &[
            Tensor::f32(&[2], &[2.0, 3.0]),
            Tensor::f32(&[2], &[4.0, 5.0]),
        ],
        2,
    )
    .expect("run");
    assert_eq!(out[0].to_f32(), [6.0, 8.0]);
    assert_eq!(out[1].to_f32(), [8.0, 15.0]);
    let err = run(
        &model,
        &[Tensor::f32(&[1], &[1.0]), Tensor::f32(&[1], &[1.0])],
        1,
    )
    .expect_err("one output asked of two");
    assert!(err.contains("returned 2 tensors but 1"), "{err}");

    let argmax = load(&model_bytes("argmax.pt")).expect("argmax.pt");
    let out = run(
        &argmax,
        &[Tensor::f32(&[2, 3], &[0.0, 5.0, 1.0, 9.0, 2.0, 3.0])],
        1,
    )
    .expect("argmax");
    let expected: Vec<u8> = [1i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(out, [Tensor::new(DType::Int64, &[2], expected)]);

    let logical = load(&model_bytes("logical.pt")).expect("logical.pt");
    let a = Tensor::new(DType::Bool, &[4], vec![0, 0, 1, 1]);
    let b = Tensor::new(DType::Bool, &[4], vec![0, 1, 0, 1]);
    let out = run(&logical, &[a, b], 2).expect("logical");
    assert_eq!(
        out,
        [
            Tensor::new(DType::Bool, &[4], vec![0, 0, 0, 1]),
            Tensor::new(DType::Bool, &[4], vec![0, 1, 1, 0])
        ]
    );
}

/// The MLP of gen-torch-models: relu(x W1 + b1) W2 + b2 with its deterministic weights.
fn mlp_reference(x: &[f32; 4]) -> Vec<f32> {
    let param = |n: usize, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 5 + seed) % 9) as f32 - 4.0) / 8.0)
            .collect()
    };
    let (w1, b1, w2, b2) = (param(32, 1), param(8, 2), param(24, 3), param(3, 4));
    let hidden: Vec<f32> = (0..8)
        .map(|j| (0..4).map(|i| x[i] * w1[i * 8 + j]).sum::<f32>() + b1[j])
        .map(|h| h.max(0.0))
        .collect();
    (0..3)
        .map(|k| (0..8).map(|j| hidden[j] * w2[j * 3 + k]).sum::<f32>() + b2[k])
        .collect()
}

#[test]
fn mlp_matches_its_weights_and_shape_errors_carry_torch_messages() {
    let model = load(&model_bytes("mlp.pt")).expect("mlp.pt");
    assert_eq!(model.input_names(), ["x"]);
    let rows = [[1.0f32, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.25, -2.0]];
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let out = run(&model, &[Tensor::f32(&[2, 4], &flat)], 1).expect("mlp");
    assert_eq!(out[0].shape, [2, 3]);
    let expected: Vec<f32> = rows.iter().flat_map(mlp_reference).collect();
    for (got, want) in out[0].to_f32().iter().zip(&expected) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
    let err = run(&model, &[Tensor::f32(&[1, 5], &[0.0; 5])], 1).expect_err("shape mismatch");
    assert!(err.contains("cannot be multiplied"), "{err}");
    let err = run(&model, &[], 1).expect_err("missing input");
    assert!(err.contains("forward"), "{err}");
    let err = run(&model, &[Tensor::f32(&[2, 4], &[0.0; 3])], 1).expect_err("short data");
    assert!(err.contains("needs 32 bytes of data, got 12"), "{err}");
}

#[test]
fn corrupt_blobs_are_errors_not_aborts() {
    let err = load(b"").expect_err("empty");
    assert_eq!(err, "the TorchScript model blob is empty");
    let err = load(b"not a torchscript file").expect_err("garbage");
    assert!(err.contains("PytorchStreamReader"), "{err}");
    let blob = model_bytes("mlp.pt");
    for len in (0..blob.len()).step_by(97) {
        assert!(
            load(&blob[..len]).is_err(),
            "mlp.pt cut to {len} bytes loaded"
        );
    }
    // Damaged copies either fail to load or load and run (or fail) cleanly.
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut loaded) = (0, 0);
    for _ in 0..60 {
        let mut damaged = blob.clone();
        for _ in 0..3 {
            let at = (rng.next_u64() % damaged.len() as u64) as usize;
            damaged[at] ^= 1 << (rng.next_u64() % 8);
        }
        match load(&damaged) {
            Err(_) => refused += 1,
            Ok(model) => {
                loaded += 1;
                let _ = run(&model, &[Tensor::f32(&[1, 4], &[1.0; 4])], 1);
            }
        }
    }
    assert_eq!(refused + loaded, 60);
    assert!(refused > 0, "no damaged copy was refused");
}

/// The offset of `name`'s data in a zip whose entries are stored (as torch writes its
/// pickles), from its local header.
fn stored_entry_offset(zip: &[u8], name: &[u8]) -> usize {
    let header = zip
        .windows(4 + 26 + name.len())
        .position(|w| w.starts_with(b"PK\x03\x04") && w.ends_with(name))
        .expect("local header");
    let field = |at: usize| usize::from(u16::from_le_bytes([zip[at], zip[at + 1]]));
    header + 30 + field(header + 26) + field(header + 28)
}

#[test]
fn a_pickle_that_would_grow_libtorch_s_memo_without_bound_is_refused() {
    // One flipped bit turns data.pkl's first BINPUT (`q`, 1-byte index) into LONG_BINPUT
    // (`r`, 4-byte index): the index becomes ~2 billion and libtorch would fill a memo
    // table that large (tens of GB) before failing. Found by the live fuzzer.
    let mut blob = model_bytes("mlp.pt");
    let pickle = stored_entry_offset(&blob, b"archive/data.pkl");
    let binput = pickle
        + blob[pickle..]
            .iter()
            .position(|&b| b == b'q')
            .expect("a BINPUT");
    blob[binput] = b'r';
    let err = load(&blob).expect_err("refused");
    assert!(
        err.contains("corrupt TorchScript archive: archive/data.pkl: memo index"),
        "{err}"
    );
    // A string longer than the pickle: refused before libtorch allocates it.
    let mut blob = model_bytes("mlp.pt");
    let unicode = pickle
        + blob[pickle..]
            .iter()
            .position(|&b| b == b'X')
            .expect("a BINUNICODE");
    blob[unicode + 4] = 0x7f;
    let err = load(&blob).expect_err("refused");
    assert!(err.contains("declares"), "{err}");
    // The intact model still loads.
    load(&model_bytes("mlp.pt")).expect("mlp.pt");
}

/// A model runs from several threads at once (the plugin says it may).
struct Concurrent(Model);

// SAFETY: TORCH sets RAI_PLUGIN_FLAG_CONCURRENT_RUN (checked in the test): `model_run` may
// be called on one model from several threads at once.
unsafe impl Sync for Concurrent {}

#[test]
fn one_model_runs_from_several_threads_at_once() {
    assert_ne!(plugin().api().flags & RAI_PLUGIN_FLAG_CONCURRENT_RUN, 0);
    let model = Concurrent(load(&model_bytes("add.pt")).expect("add.pt"));
    std::thread::scope(|scope| {
        for t in 0..4 {
            let model = &model;
            scope.spawn(move || {
                for i in 0..50 {
                    let v = (t * 100 + i) as f32;
                    let out = run(
                        &model.0,
                        &[Tensor::f32(&[1], &[v]), Tensor::f32(&[1], &[1.0])],
                        1,
                    )
                    .expect("run");
                    assert_eq!(out[0].to_f32(), [v + 1.0]);
                }
            });
        }
    });
}
