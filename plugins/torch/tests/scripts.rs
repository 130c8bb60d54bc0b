//! TorchScript scripts through the exported C table: loading (syntax errors, entry points
//! and their signatures, with RedisAI's error texts), running (one, several or no
//! outputs, runtime errors) and the extensions `redis.execute`, `redis.asList` and
//! `redisAI.model_execute`, served by the test host in `common`.

mod common;

use common::{free_script, load, load_script, model_bytes, register_model, run_script, Tensor};

const SCRIPT: &str = r#"
def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def split(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] * 3]

def pair(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0], tensors[0] + 1

def nothing(tensors: List[Tensor], keys: List[str], args: List[str]):
    return None

def scaled(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] * float(args[0])

def fails(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.cat([tensors[0], tensors[1]], dim=5)

def helper(x: Tensor):
    return x
"#;

#[test]
fn script_functions_return_one_several_or_no_tensors() {
    let script = load_script(SCRIPT, &["add", "split", "pair", "nothing", "scaled"]).expect("load");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let b = Tensor::f32(&[2], &[10.0, 20.0]);
    let out = run_script(script, "add", &[a.clone(), b.clone()], &[], &[], 4, false).expect("add");
    assert_eq!(out, [Tensor::f32(&[2], &[11.0, 22.0])]);
    let out = run_script(
        script,
        "split",
        std::slice::from_ref(&a),
        &[],
        &[],
        4,
        false,
    )
    .expect("split");
    assert_eq!(
        out,
        [
            Tensor::f32(&[2], &[2.0, 4.0]),
            Tensor::f32(&[2], &[3.0, 6.0])
        ]
    );
    let out =
        run_script(script, "pair", std::slice::from_ref(&a), &[], &[], 2, false).expect("pair");
    assert_eq!(out, [a.clone(), Tensor::f32(&[2], &[2.0, 3.0])]);
    let out = run_script(script, "nothing", &[], &[], &[], 1, false).expect("nothing");
    assert!(out.is_empty());
    let out = run_script(
        script,
        "scaled",
        std::slice::from_ref(&a),
        &[],
        &["2.5"],
        1,
        false,
    )
    .expect("scaled");
    assert_eq!(out, [Tensor::f32(&[2], &[2.5, 5.0])]);
    let err = run_script(
        script,
        "split",
        std::slice::from_ref(&a),
        &[],
        &[],
        1,
        false,
    )
    .expect_err("too many");
    assert!(err.contains("returned 2 tensors but 1"), "{err}");
    free_script(script);
}

#[test]
fn load_errors_use_redisai_texts() {
    let err = load_script(SCRIPT, &["add", "bar1"]).expect_err("missing entry point");
    assert_eq!(err, "Function bar1 does not exist in the given script.");
    let err = load_script(SCRIPT, &["helper"]).expect_err("wrong arity");
    assert_eq!(
        err,
        "Wrong number of inputs in function helper. Expected 3 but was 1"
    );
    let wrong_types = "def bar(a: List[Tensor], b: List[str], c: List[int]):\n    return a[0]\n";
    let err = load_script(wrong_types, &["bar"]).expect_err("wrong types");
    assert_eq!(
        err,
        "Wrong inputs type in function bar. Expected signature similar to: \
         def bar(tensors: List[Tensor], keys: List[str], args: List[str])"
    );
    let err =
        load_script("def bar(tensors: List[Tensor], keys\n  return 1 +", &[]).expect_err("syntax");
    assert!(!err.is_empty());
    let err = load_script("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return undefined_name(tensors)\n", &[])
        .expect_err("undefined name");
    assert!(err.contains("undefined value undefined_name"), "{err}");
}

#[test]
fn run_errors_carry_torch_messages() {
    let script = load_script(SCRIPT, &[]).expect("load");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let err = run_script(
        script,
        "missing",
        std::slice::from_ref(&a),
        &[],
        &[],
        1,
        false,
    )
    .expect_err("missing");
    assert_eq!(err, "Function missing does not exist in the given script.");
    let err =
        run_script(script, "fails", &[a.clone(), a.clone()], &[], &[], 1, false).expect_err("cat");
    assert!(err.contains("Dimension out of range"), "{err}");
    let err =
        run_script(script, "add", std::slice::from_ref(&a), &[], &[], 1, false).expect_err("index");
    assert!(err.contains("out of range"), "{err}");
    let err = run_script(script, "scaled", &[a], &[], &["x"], 1, false).expect_err("float('x')");
    assert!(err.contains("float(args[0])"), "{err}");
    free_script(script);
}

const EXTENSIONS: &str = r#"
def counter(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    redis.execute("INCR", keys[0])
    n = int(str(redis.execute("INCR", keys[0])))
    return torch.full([1], n, dtype=torch.int64)

def listed(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("DEL", keys[0])
    for a in args:
        redis.execute("RPUSH", keys[0], a)
    values = redis.asList(redis.execute("LRANGE", keys[0], "0", "-1"))
    out: List[float] = []
    for v in values:
        out.append(float(str(v)))
    return torch.tensor(out)

def missing(tensors: List[Tensor], keys: List[str], args: List[str]):
    value = redis.execute("GET", keys[0])
    if value is None:
        return torch.zeros([1])
    return torch.ones([1])

def bad_command(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("NOSUCHCOMMAND", keys[0])
    return tensors[0]

def run_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    outs = redisAI.model_execute(keys[0], [tensors[0], tensors[1]], 2)
    return outs[0] + outs[1]
"#;

#[test]
fn redis_execute_and_as_list_reach_the_host() {
    let script =
        load_script(EXTENSIONS, &["counter", "listed", "missing", "bad_command"]).expect("load");
    let out = run_script(script, "counter", &[], &["n"], &["40"], 1, true).expect("counter");
    assert_eq!(out[0].data, 42i64.to_le_bytes());
    let out =
        run_script(script, "listed", &[], &["l"], &["1.5", "2", "-3"], 1, true).expect("listed");
    assert_eq!(out, [Tensor::f32(&[3], &[1.5, 2.0, -3.0])]);
    let out = run_script(script, "missing", &[], &["absent"], &[], 1, true).expect("nil");
    assert_eq!(out, [Tensor::f32(&[1], &[0.0])]);
    let err = run_script(
        script,
        "bad_command",
        &[Tensor::f32(&[1], &[1.0])],
        &["k"],
        &[],
        1,
        true,
    )
    .expect_err("error reply");
    assert!(err.contains("ERR unknown command 'NOSUCHCOMMAND'"), "{err}");
    // Without a host context (a run the host offers no services to) it is an error.
    let err = run_script(script, "counter", &[], &["n"], &["1"], 1, false).expect_err("no ctx");
    assert!(
        err.contains("redis.execute is not available in this run"),
        "{err}"
    );
    free_script(script);
}

#[test]
fn model_execute_runs_a_stored_model() {
    let model = load(&model_bytes("two_outputs.pt")).expect("model");
    register_model("m{1}", model);
    let script = load_script(EXTENSIONS, &["run_model"]).expect("load");
    let a = Tensor::f32(&[2], &[2.0, 3.0]);
    let b = Tensor::f32(&[2], &[4.0, 5.0]);
    let out = run_script(
        script,
        "run_model",
        &[a.clone(), b.clone()],
        &["m{1}"],
        &[],
        1,
        true,
    )
    .expect("run_model");
    // (a + b) + (a * b)
    assert_eq!(out, [Tensor::f32(&[2], &[14.0, 23.0])]);
    let err = run_script(
        script,
        "run_model",
        &[a.clone(), b.clone()],
        &["absent"],
        &[],
        1,
        true,
    )
    .expect_err("missing model");
    assert!(err.contains("ERR model key is empty"), "{err}");
    // The model's own error comes back through the host.
    let err = run_script(
        script,
        "run_model",
        &[a, Tensor::f32(&[3], &[1.0; 3])],
        &["m{1}"],
        &[],
        1,
        true,
    )
    .expect_err("shape mismatch");
    assert!(err.contains("must match the size"), "{err}");
    free_script(script);
}
