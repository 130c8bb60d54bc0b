//! Models on a real GPU, with the GPU-only bundle (dist-gpu/, made by scripts/build-gpu).
//! Every test here is ignored by default: they need an NVIDIA GPU (driver for CUDA 13)
//! and the bundle, and run through `scripts/test-gpu`, which checks for the GPU first
//! and fails at once without one. `gpu_variant_runs_on_gpu0_or_says_why_not` also runs
//! on machines without a GPU (scripts/test-gpu --no-gpu), where it checks the error.
//!
//! Torch: when the Torch plugin has a GPU variant (backends/redisai_torch_gpu/), its GPU
//! tests belong in tests/tests/torch_gpu.rs, which scripts/test-gpu runs when present.

mod common;

use common::{close, gpu_module, gpu_server, info_modules, store_on, values_f64};
use redisai_tests::redis::Value;
use redisai_tests::{error_text, run_nested, run_str};

#[test]
#[ignore = "needs dist-gpu/ (scripts/build-gpu); run by scripts/test-gpu (--no-gpu on a machine without a GPU)"]
fn gpu_variant_runs_on_gpu0_or_says_why_not() {
    let server = gpu_server(gpu_module());
    let mut c = server.client();
    match store_on(&mut c, "g", "mlp.onnx", "GPU:0") {
        Ok(reply) => {
            assert_eq!(reply, Value::Okay);
            run_str(&mut c, "AI.TENSORSET x FLOAT 1 4 VALUES 1 2 3 4").expect("x");
            assert_eq!(
                run_str(&mut c, "AI.MODELEXECUTE g INPUTS 1 x OUTPUTS 1 y").expect("run"),
                Value::Okay
            );
            let y = values_f64(run_str(&mut c, "AI.TENSORGET y VALUES").expect("y"));
            assert!(close(&y, &[0.421875, 1.8125, 0.015625]), "{y:?}");
        }
        Err(err) => {
            let text = error_text(Err(err));
            eprintln!("GPU:0 on this machine: {text}");
            assert!(
                text.starts_with("ERR cannot run the model on GPU:0: ") && text.contains("NVIDIA"),
                "says which device and why: {text}"
            );
            assert_eq!(run_str(&mut c, "EXISTS g").expect("exists"), Value::Int(0));
        }
    }
    // The GPU variant serves CPU models too, and Redis stays healthy either way.
    assert_eq!(
        store_on(&mut c, "c", "mlp.onnx", "CPU").expect("CPU store"),
        Value::Okay
    );
    let info = info_modules(&mut c);
    assert!(
        info.contains("devices=CPU|GPU") && info.contains("redisai_onnxruntime_gpu.so"),
        "{info}"
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU and dist-gpu/ (scripts/build-gpu); run by scripts/test-gpu"]
fn onnx_models_on_gpu_match_the_cpu() {
    let server = gpu_server(gpu_module());
    let mut c = server.client();
    for (key, device) in [("cpu", "CPU"), ("gpu", "GPU"), ("gpu0", "GPU:0")] {
        assert_eq!(
            store_on(&mut c, key, "mlp.onnx", device).expect(device),
            Value::Okay
        );
    }
    run_str(&mut c, "AI.TENSORSET x FLOAT 2 4 VALUES 1 2 3 4 -1 0.5 2 8").expect("x");
    let mut outputs = Vec::new();
    for key in ["cpu", "gpu", "gpu0"] {
        let line = format!("AI.MODELEXECUTE {key} INPUTS 1 x OUTPUTS 1 y_{key}");
        assert_eq!(run_str(&mut c, &line).expect(key), Value::Okay);
        outputs.push(values_f64(
            run_str(&mut c, &format!("AI.TENSORGET y_{key} VALUES")).expect("y"),
        ));
    }
    assert!(
        close(&outputs[1], &outputs[0]),
        "GPU {:?} vs CPU {:?}",
        outputs[1],
        outputs[0]
    );
    assert!(
        close(&outputs[2], &outputs[0]),
        "GPU:0 {:?} vs CPU {:?}",
        outputs[2],
        outputs[0]
    );
    let Value::Array(meta) = run_str(&mut c, "AI.MODELGET gpu0 META").expect("meta") else {
        panic!("MODELGET META is an array")
    };
    assert_eq!(meta[3], Value::BulkString(b"GPU:0".to_vec()));
    let info = info_modules(&mut c);
    // GPU and GPU:0 share one queue; the CPU has its own.
    assert!(
        info.contains("ai_queue_gpu_0:") && info.contains("ai_queue_cpu_0:"),
        "{info}"
    );
    assert!(info.contains("ai_count:2"), "{info}");
    // A device the machine does not have is an error that names it.
    let text = error_text(store_on(&mut c, "nope", "mlp.onnx", "GPU:99999"));
    assert!(text.contains("GPU:99999 does not exist"), "{text}");
}

#[test]
#[ignore = "needs an NVIDIA GPU and dist-gpu/ (scripts/build-gpu); run by scripts/test-gpu"]
fn a_dag_mixes_cpu_and_gpu_ops() {
    let server = gpu_server(gpu_module());
    let mut c = server.client();
    assert_eq!(
        store_on(&mut c, "add_cpu", "add.onnx", "CPU").expect("cpu"),
        Value::Okay
    );
    assert_eq!(
        store_on(&mut c, "add_gpu", "add.onnx", "GPU:0").expect("gpu"),
        Value::Okay
    );
    // s = a + b on the CPU, t = s + b on the GPU, u = a + b on the GPU alongside.
    let reply = run_nested(
        &mut c,
        "AI.DAGEXECUTE PERSIST 1 t |> AI.TENSORSET a FLOAT 2 VALUES 1 2 \
         |> AI.TENSORSET b FLOAT 2 VALUES 10 20 \
         |> AI.MODELEXECUTE add_cpu INPUTS 2 a b OUTPUTS 1 s \
         |> AI.MODELEXECUTE add_gpu INPUTS 2 s b OUTPUTS 1 t \
         |> AI.MODELEXECUTE add_gpu INPUTS 2 a b OUTPUTS 1 u \
         |> AI.TENSORGET t VALUES |> AI.TENSORGET u VALUES",
    )
    .expect("dag");
    let Value::Array(items) = reply else {
        panic!("one reply per op: {reply:?}")
    };
    assert_eq!(items.len(), 7, "{items:?}");
    assert!(items[..5].iter().all(|v| *v == Value::Okay), "{items:?}");
    assert_eq!(values_f64(items[5].clone()), vec![21.0, 42.0]);
    assert_eq!(values_f64(items[6].clone()), vec![11.0, 22.0]);
    assert_eq!(
        values_f64(run_str(&mut c, "AI.TENSORGET t VALUES").expect("persisted")),
        vec![21.0, 42.0]
    );
}
