//! TorchScript models and scripts on a real GPU, with the Torch GPU variant of the
//! GPU-only bundle (dist-gpu/backends/redisai_torch_gpu/, made by scripts/build-gpu).
//! Every test here is ignored by default: they need the bundle (and, except the first,
//! an NVIDIA GPU with a driver for CUDA 13), and run through `scripts/test-gpu`.
//! `torch_gpu_variant_runs_on_gpu0_or_says_why_not` also runs on machines without a GPU
//! (scripts/test-gpu --no-gpu), where it checks the error and that Redis stays healthy.

mod common;

use std::path::PathBuf;

use common::{close, gpu_module, gpu_server, info_modules, pong, store_on, values_f64};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, run, run_nested, run_str};

/// The bundle's module, which must have the Torch GPU variant.
fn torch_gpu_module() -> PathBuf {
    let path = gpu_module();
    let torch = path
        .parent()
        .map(|dir| dir.join("backends/redisai_torch_gpu/redisai_torch_gpu.so"));
    assert!(
        torch.as_ref().is_some_and(|p| p.is_file()),
        "the bundle has no Torch GPU variant ({torch:?}): scripts/build-gpu builds it"
    );
    path
}

/// A script with a function that uses an aten operator and two inputs.
const SCRIPT: &str = "def scaled(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.relu(tensors[0] * 2.0) + tensors[1]\n\ndef twice(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0] * 2\n";

fn store_script(c: &mut Connection, key: &str, device: &str) -> redis::RedisResult<Value> {
    run(
        c,
        &[
            b"AI.SCRIPTSTORE",
            key.as_bytes(),
            device.as_bytes(),
            b"ENTRY_POINTS",
            b"2",
            b"scaled",
            b"twice",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    )
}

fn get(c: &mut Connection, key: &str) -> Vec<f64> {
    values_f64(run_str(c, &format!("AI.TENSORGET {key} VALUES")).expect(key))
}

fn check_refusal(c: &mut Connection, text: &str, what: &str, key: &str) {
    eprintln!("TORCH {what} on GPU:0 on this machine: {text}");
    assert!(
        text.starts_with(&format!("ERR cannot run the {what} on GPU:0: ")),
        "says which device: {text}"
    );
    assert!(text.contains("NVIDIA"), "says why: {text}");
    assert_eq!(
        run_str(c, &format!("EXISTS {key}")).expect("exists"),
        Value::Int(0)
    );
}

#[test]
#[ignore = "needs dist-gpu/ with the Torch GPU variant (scripts/build-gpu); run by scripts/test-gpu (--no-gpu on a machine without a GPU)"]
fn torch_gpu_variant_runs_on_gpu0_or_says_why_not() {
    let server = gpu_server(torch_gpu_module());
    let mut c = server.client();
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 4 VALUES 1 2 3 4").expect("x");
    match store_on(&mut c, "g", "mlp.pt", "GPU:0") {
        Ok(reply) => {
            assert_eq!(reply, Value::Okay);
            assert_eq!(
                run_str(&mut c, "AI.MODELEXECUTE g INPUTS 1 x OUTPUTS 1 y").expect("run"),
                Value::Okay
            );
            assert!(close(&get(&mut c, "y"), &[-0.78125, 0.75, -0.25]));
        }
        Err(err) => check_refusal(&mut c, &error_text(Err(err)), "model", "g"),
    }
    match store_script(&mut c, "s", "GPU:0") {
        Ok(reply) => {
            assert_eq!(reply, Value::Okay);
            assert_eq!(
                run_str(&mut c, "AI.SCRIPTEXECUTE s twice INPUTS 1 x OUTPUTS 1 z").expect("run"),
                Value::Okay
            );
            assert_eq!(get(&mut c, "z"), vec![2.0, 4.0, 6.0, 8.0]);
        }
        Err(err) => check_refusal(&mut c, &error_text(Err(err)), "script", "s"),
    }
    // The GPU variant serves CPU models too, and Redis stays healthy either way.
    assert_eq!(
        store_on(&mut c, "c", "mlp.pt", "CPU").expect("CPU store"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE c INPUTS 1 x OUTPUTS 1 yc").expect("CPU run"),
        Value::Okay
    );
    assert!(close(&get(&mut c, "yc"), &[-0.78125, 0.75, -0.25]));
    let info = info_modules(&mut c);
    assert!(
        info.lines()
            .any(|line| line.contains("redisai_torch_gpu.so") && line.contains("devices=CPU|GPU")),
        "{info}"
    );
    pong(&mut c);
}

#[test]
#[ignore = "needs an NVIDIA GPU and dist-gpu/ with the Torch GPU variant (scripts/build-gpu); run by scripts/test-gpu"]
fn torch_model_and_script_on_gpu_match_the_cpu() {
    let server = gpu_server(torch_gpu_module());
    let mut c = server.client();
    for (key, device) in [("cpu", "CPU"), ("gpu", "GPU"), ("gpu0", "GPU:0")] {
        assert_eq!(
            store_on(&mut c, key, "mlp.pt", device).expect(device),
            Value::Okay
        );
        assert_eq!(
            store_script(&mut c, &format!("s_{key}"), device).expect(device),
            Value::Okay
        );
    }
    run_str(&mut c, "AI.TENSORSET x FLOAT 2 4 VALUES 1 2 3 4 -1 0.5 2 8").expect("x");
    run_str(
        &mut c,
        "AI.TENSORSET b FLOAT 2 4 VALUES 10 20 30 40 50 60 70 80",
    )
    .expect("b");
    let mut models = Vec::new();
    let mut scripts = Vec::new();
    for key in ["cpu", "gpu", "gpu0"] {
        let line = format!("AI.MODELEXECUTE {key} INPUTS 1 x OUTPUTS 1 y_{key}");
        assert_eq!(run_str(&mut c, &line).expect(key), Value::Okay);
        models.push(get(&mut c, &format!("y_{key}")));
        let line = format!("AI.SCRIPTEXECUTE s_{key} scaled INPUTS 2 x b OUTPUTS 1 z_{key}");
        assert_eq!(run_str(&mut c, &line).expect(key), Value::Okay);
        scripts.push(get(&mut c, &format!("z_{key}")));
    }
    for i in 1..3 {
        assert!(close(&models[i], &models[0]), "model {models:?}");
        assert!(close(&scripts[i], &scripts[0]), "script {scripts:?}");
    }
    assert!(close(
        &scripts[0],
        &[12.0, 24.0, 36.0, 48.0, 50.0, 61.0, 74.0, 96.0]
    ));
    let Value::Array(meta) = run_str(&mut c, "AI.MODELGET gpu0 META").expect("meta") else {
        panic!("MODELGET META is an array")
    };
    assert_eq!(meta[3], Value::BulkString(b"GPU:0".to_vec()));
    // A device the machine does not have is an error that names it.
    let text = error_text(store_on(&mut c, "nope", "mlp.pt", "GPU:99999"));
    assert!(text.contains("GPU:99999 does not exist"), "{text}");
    let text = error_text(store_script(&mut c, "nope_s", "GPU:99999"));
    assert!(text.contains("GPU:99999 does not exist"), "{text}");
    pong(&mut c);
}

#[test]
#[ignore = "needs an NVIDIA GPU and dist-gpu/ with the Torch GPU variant (scripts/build-gpu); run by scripts/test-gpu"]
fn a_dag_mixes_cpu_onnx_and_gpu_torch_ops() {
    let server = gpu_server(torch_gpu_module());
    let mut c = server.client();
    assert_eq!(
        store_on(&mut c, "add_cpu", "add.onnx", "CPU").expect("onnx cpu"),
        Value::Okay
    );
    assert_eq!(
        store_on(&mut c, "add_gpu", "add.pt", "GPU:0").expect("torch gpu"),
        Value::Okay
    );
    assert_eq!(
        store_script(&mut c, "s_gpu", "GPU:0").expect("script gpu"),
        Value::Okay
    );
    // s = a + b on the CPU (ONNX), t = s + b on the GPU (Torch), u = 2 t on the GPU (script).
    let reply = run_nested(
        &mut c,
        "AI.DAGEXECUTE PERSIST 1 u |> AI.TENSORSET a FLOAT 2 VALUES 1 2 \
         |> AI.TENSORSET b FLOAT 2 VALUES 10 20 \
         |> AI.MODELEXECUTE add_cpu INPUTS 2 a b OUTPUTS 1 s \
         |> AI.MODELEXECUTE add_gpu INPUTS 2 s b OUTPUTS 1 t \
         |> AI.SCRIPTEXECUTE s_gpu twice INPUTS 1 t OUTPUTS 1 u \
         |> AI.TENSORGET t VALUES |> AI.TENSORGET u VALUES",
    )
    .expect("dag");
    let Value::Array(items) = reply else {
        panic!("one reply per op: {reply:?}")
    };
    assert_eq!(items.len(), 7, "{items:?}");
    assert!(items[..5].iter().all(|v| *v == Value::Okay), "{items:?}");
    assert_eq!(values_f64(items[5].clone()), vec![21.0, 42.0]);
    assert_eq!(values_f64(items[6].clone()), vec![42.0, 84.0]);
    assert_eq!(get(&mut c, "u"), vec![42.0, 84.0]);
}
