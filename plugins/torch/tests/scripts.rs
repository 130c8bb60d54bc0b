//! TorchScript scripts through the exported C table: loading (syntax errors, entry points
//! and their signatures, with RedisAI's error texts), running (one, several or no
//! outputs, runtime errors) and the extensions `redis.execute`, `redis.asList` and
//! `redisAI.model_execute`, served by the test host in `common`; and the deprecated
//! AI.SCRIPTRUN calling convention (tensors as the function's own parameters, `$` for
//! a list of tensors).

mod common;

use common::{
    load, load_script, model_bytes, register_model, run_script, run_script_positional, Script,
    Tensor,
};

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

/// Runs `function` with no keys, no args and no host context.
fn run_fn(
    script: &Script,
    function: &str,
    inputs: &[Tensor],
    max_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    run_script(script, function, inputs, &[], &[], max_outputs, false)
}

#[test]
fn script_functions_return_one_several_or_no_tensors() {
    let script = load_script(SCRIPT, &["add", "split", "pair", "nothing", "scaled"]).expect("load");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let b = Tensor::f32(&[2], &[10.0, 20.0]);
    let out = run_fn(&script, "add", &[a.clone(), b.clone()], 4).expect("add");
    assert_eq!(out, [Tensor::f32(&[2], &[11.0, 22.0])]);
    let out = run_fn(&script, "split", std::slice::from_ref(&a), 4).expect("split");
    assert_eq!(
        out,
        [
            Tensor::f32(&[2], &[2.0, 4.0]),
            Tensor::f32(&[2], &[3.0, 6.0])
        ]
    );
    let out = run_fn(&script, "pair", std::slice::from_ref(&a), 2).expect("pair");
    assert_eq!(out, [a.clone(), Tensor::f32(&[2], &[2.0, 3.0])]);
    let out = run_fn(&script, "nothing", &[], 1).expect("nothing");
    assert!(out.is_empty());
    let out = run_script(
        &script,
        "scaled",
        std::slice::from_ref(&a),
        &[],
        &["2.5"],
        1,
        false,
    )
    .expect("scaled");
    assert_eq!(out, [Tensor::f32(&[2], &[2.5, 5.0])]);
    let err = run_fn(&script, "split", std::slice::from_ref(&a), 1).expect_err("too many");
    assert!(err.contains("returned 2 tensors but 1"), "{err}");
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
    let err = run_fn(&script, "missing", std::slice::from_ref(&a), 1).expect_err("missing");
    assert_eq!(err, "Function missing does not exist in the given script.");
    let err = run_fn(&script, "fails", &[a.clone(), a.clone()], 1).expect_err("cat");
    assert!(err.contains("Dimension out of range"), "{err}");
    let err = run_fn(&script, "add", std::slice::from_ref(&a), 1).expect_err("index");
    assert!(err.contains("out of range"), "{err}");
    let err = run_script(&script, "scaled", &[a], &[], &["x"], 1, false).expect_err("float('x')");
    assert!(err.contains("float(args[0])"), "{err}");
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
    let out = run_script(&script, "counter", &[], &["n"], &["40"], 1, true).expect("counter");
    assert_eq!(out[0].data, 42i64.to_le_bytes());
    let out =
        run_script(&script, "listed", &[], &["l"], &["1.5", "2", "-3"], 1, true).expect("listed");
    assert_eq!(out, [Tensor::f32(&[3], &[1.5, 2.0, -3.0])]);
    let out = run_script(&script, "missing", &[], &["absent"], &[], 1, true).expect("nil");
    assert_eq!(out, [Tensor::f32(&[1], &[0.0])]);
    let err = run_script(
        &script,
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
    let err = run_script(&script, "counter", &[], &["n"], &["1"], 1, false).expect_err("no ctx");
    assert!(
        err.contains("redis.execute is not available in this run"),
        "{err}"
    );
}

#[test]
fn model_execute_runs_a_stored_model() {
    let model = load(&model_bytes("two_outputs.pt")).expect("model");
    register_model("m{1}", &model);
    let script = load_script(EXTENSIONS, &["run_model"]).expect("load");
    let a = Tensor::f32(&[2], &[2.0, 3.0]);
    let b = Tensor::f32(&[2], &[4.0, 5.0]);
    let run_model = |key: &str, b: &Tensor| {
        run_script(
            &script,
            "run_model",
            &[a.clone(), b.clone()],
            &[key],
            &[],
            1,
            true,
        )
    };
    // (a + b) + (a * b)
    let out = run_model("m{1}", &b).expect("run_model");
    assert_eq!(out, [Tensor::f32(&[2], &[14.0, 23.0])]);
    let err = run_model("absent", &b).expect_err("missing model");
    assert!(err.contains("ERR model key is empty"), "{err}");
    // The model's own error comes back through the host.
    let err = run_model("m{1}", &Tensor::f32(&[3], &[1.0; 3])).expect_err("shape mismatch");
    assert!(err.contains("must match the size"), "{err}");
}

const LEGACY: &str = r#"
def bar(a, b):
    return a + b

def addn(a, args: List[Tensor]):
    return a + torch.stack(args).sum(dim=0)

def first_list(args: List[Tensor], b: Tensor):
    return torch.stack(args).sum(dim=0) * b

def pair(a, b):
    return a + b, a * b

def scaled(a, factor: float = 2.0):
    return a * factor

def needs_int(a, n: int):
    return a * n

def two_lists(a: List[Tensor], b: List[Tensor]):
    return a[0] + b[0]

def lists(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] - tensors[1]

def three(a, b, c):
    return a + b + c
"#;

fn f32s(values: &[f32]) -> Tensor {
    Tensor::f32(&[values.len() as i64], values)
}

#[test]
fn scriptrun_binds_tensors_to_parameters() {
    let script = load_script(LEGACY, &[]).expect("load");
    let (a, b) = (f32s(&[1.0, 2.0]), f32s(&[10.0, 20.0]));
    let out = run_script_positional(&script, "bar", &[a.clone(), b.clone()], None, 1).expect("bar");
    assert_eq!(out, [f32s(&[11.0, 22.0])]);
    // A tuple fills several outputs.
    let out =
        run_script_positional(&script, "pair", &[a.clone(), b.clone()], None, 2).expect("pair");
    assert_eq!(out, [f32s(&[11.0, 22.0]), f32s(&[10.0, 40.0])]);
    // A parameter with a default value that no input reaches keeps it.
    let out = run_script_positional(&script, "scaled", std::slice::from_ref(&a), None, 1)
        .expect("scaled");
    assert_eq!(out, [f32s(&[2.0, 4.0])]);
    // A three-list function gets every input as `tensors`, `$` or not.
    let out = run_script_positional(&script, "lists", &[b.clone(), a.clone()], Some(1), 1)
        .expect("lists");
    assert_eq!(out, [f32s(&[9.0, 18.0])]);
}

#[test]
fn scriptrun_fills_the_list_parameter() {
    let script = load_script(LEGACY, &[]).expect("load");
    let (a, b, c) = (f32s(&[40.0]), f32s(&[1.0]), f32s(&[0.5]));
    let inputs = [a.clone(), b.clone(), c.clone()];
    // After `$` ...
    let out = run_script_positional(&script, "addn", &inputs, Some(1), 1).expect("$");
    assert_eq!(out, [f32s(&[41.5])]);
    // ... or, without `$`, what the Tensor parameters leave, at the list's place.
    let out = run_script_positional(&script, "addn", &inputs, None, 1).expect("no $");
    assert_eq!(out, [f32s(&[41.5])]);
    let out = run_script_positional(&script, "first_list", &inputs, None, 1).expect("first");
    assert_eq!(out, [f32s(&[20.5])]);
    let out =
        run_script_positional(&script, "first_list", &[c.clone(), a, b], Some(1), 1).expect("$");
    assert_eq!(out, [f32s(&[20.5])]);
    // An empty list after a trailing `$`.
    let err = run_script_positional(&script, "addn", &[c], Some(1), 1).expect_err("empty stack");
    assert!(
        err.contains("stack expects a non-empty TensorList"),
        "{err}"
    );
}

#[test]
fn scriptrun_errors_name_the_function_and_its_signature() {
    let script = load_script(LEGACY, &[]).expect("load");
    let a = f32s(&[1.0]);
    let cases: [(&str, usize, Option<usize>, &str); 8] = [
        ("bar", 1, None, "Wrong number of inputs in function bar: bar(a: Tensor, b: Tensor) takes 2 tensors, AI.SCRIPTRUN gave 1 tensor"),
        ("bar", 3, None, "Wrong number of inputs in function bar: bar(a: Tensor, b: Tensor) takes 2 tensors, AI.SCRIPTRUN gave 3 tensors"),
        ("bar", 2, Some(1), "Wrong inputs type in function bar: bar(a: Tensor, b: Tensor) has no List[Tensor] parameter for the inputs after $"),
        ("addn", 0, None, "Wrong number of inputs in function addn: addn(a: Tensor, args: List[Tensor]) takes at least 1 tensor, AI.SCRIPTRUN gave 0 tensors"),
        ("addn", 3, Some(2), "Wrong number of inputs in function addn: addn(a: Tensor, args: List[Tensor]) takes 1 tensor before $, AI.SCRIPTRUN gave 2 tensors"),
        ("needs_int", 2, None, "Wrong inputs type in function needs_int: parameter n of needs_int(a: Tensor, n: int) is not a Tensor or a List[Tensor] (AI.SCRIPTRUN passes tensors only)"),
        ("two_lists", 2, None, "Wrong inputs type in function two_lists: two_lists(a: List[Tensor], b: List[Tensor]) has 2 List[Tensor] parameters, AI.SCRIPTRUN fills one at most (with the inputs after $)"),
        ("nope", 1, None, "Function nope does not exist in the given script."),
    ];
    for (function, count, variadic, expected) in cases {
        let inputs = vec![a.clone(); count];
        let err =
            run_script_positional(&script, function, &inputs, variadic, 1).expect_err(function);
        assert_eq!(
            err, expected,
            "{function} with {count} inputs, $ at {variadic:?}"
        );
    }
}

#[test]
fn scriptexecute_still_needs_the_three_lists() {
    let script = load_script(LEGACY, &[]).expect("load");
    let a = f32s(&[1.0]);
    let err = run_fn(&script, "bar", &[a.clone(), a.clone()], 1).expect_err("old-style function");
    assert_eq!(
        err,
        "Wrong number of inputs in function bar. Expected 3 but was 2"
    );
    let err = run_fn(&script, "two_lists", std::slice::from_ref(&a), 1).expect_err("wrong types");
    assert_eq!(
        err,
        "Wrong number of inputs in function two_lists. Expected 3 but was 2"
    );
    let err = run_fn(&script, "three", std::slice::from_ref(&a), 1).expect_err("three tensors");
    assert_eq!(
        err,
        "Wrong inputs type in function three. Expected signature similar to: \
         def three(tensors: List[Tensor], keys: List[str], args: List[str])"
    );
    let out = run_fn(&script, "lists", &[a.clone(), a], 1).expect("lists");
    assert_eq!(out, [f32s(&[0.0])]);
}
