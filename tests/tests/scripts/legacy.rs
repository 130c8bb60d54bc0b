//! RedisAI 1.2 style functions through the deprecated AI.SCRIPTSET / AI.SCRIPTRUN.

use super::*;

/// RedisAI 1.2 style functions: tensors as their own parameters, one `List[Tensor]`
/// for the inputs after `$`.
const LEGACY_SCRIPT: &str = r#"
def bar(a, b):
    return a + b

def addn(a, args: List[Tensor]):
    return a + torch.stack(args).sum(dim=0)

def sum_diff(a, b):
    return a + b, a - b
"#;

fn set_legacy_script(c: &mut Connection) {
    let set: Vec<&[u8]> = vec![
        b"AI.SCRIPTSET",
        b"legacy",
        b"CPU",
        b"SOURCE",
        LEGACY_SCRIPT.as_bytes(),
    ];
    assert_eq!(run(c, &set).expect("SCRIPTSET"), Value::Okay);
    for (name, value) in [("x", "40"), ("y", "1"), ("z", "1")] {
        run_str(c, &format!("AI.TENSORSET {name} FLOAT 1 VALUES {value}")).expect(name);
    }
}

#[test]
fn scriptrun_passes_tensors_as_parameters() {
    let (_server, mut c) = server();
    set_legacy_script(&mut c);
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTRUN legacy bar INPUTS a b OUTPUTS c").expect("bar"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET c VALUES").expect("c"),
        strings(&["4", "6", "4", "6"])
    );
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTRUN legacy addn INPUTS x $ y z OUTPUTS sum"
        )
        .expect("addn"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET sum VALUES").expect("sum"),
        strings(&["42"])
    );
    // A tuple result fills two OUTPUTS.
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTRUN legacy sum_diff INPUTS a b OUTPUTS plus minus"
        )
        .expect("tuple"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET plus VALUES").expect("plus"),
        strings(&["4", "6", "4", "6"])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET minus VALUES").expect("minus"),
        strings(&["0", "0", "0", "0"])
    );
    // The same ops inside a deprecated DAG.
    let reply = run_nested(
        &mut c,
        "AI.DAGRUN LOAD 3 x y z |> AI.SCRIPTRUN legacy addn INPUTS x $ y z OUTPUTS out \
         |> AI.TENSORGET out VALUES",
    )
    .expect("dagrun");
    assert_eq!(reply, Value::Array(vec![Value::Okay, strings(&["42"])]));
}

#[test]
fn scriptrun_arity_errors_and_scriptexecute_unchanged() {
    let (_server, mut c) = server();
    set_legacy_script(&mut c);
    let cases = [
        (
            "AI.SCRIPTRUN legacy bar INPUTS a OUTPUTS c",
            "ERR Wrong number of inputs in function bar: bar(a: Tensor, b: Tensor) takes 2 \
             tensors, AI.SCRIPTRUN gave 1 tensor",
        ),
        (
            "AI.SCRIPTRUN legacy bar INPUTS a b a OUTPUTS c",
            "ERR Wrong number of inputs in function bar: bar(a: Tensor, b: Tensor) takes 2 \
             tensors, AI.SCRIPTRUN gave 3 tensors",
        ),
        (
            "AI.SCRIPTRUN legacy addn INPUTS x y $ z OUTPUTS c",
            "ERR Wrong number of inputs in function addn: addn(a: Tensor, args: List[Tensor]) \
             takes 1 tensor before $, AI.SCRIPTRUN gave 2 tensors",
        ),
        (
            "AI.SCRIPTRUN legacy bar INPUTS a $ b OUTPUTS c",
            "ERR Wrong inputs type in function bar: bar(a: Tensor, b: Tensor) has no \
             List[Tensor] parameter for the inputs after $",
        ),
        (
            "AI.SCRIPTRUN legacy sum_diff INPUTS a b OUTPUTS c",
            "ERR function sum_diff returned 2 tensors but 1 OUTPUTS were given",
        ),
        (
            "AI.SCRIPTRUN legacy nope INPUTS a b OUTPUTS c",
            "ERR Function nope does not exist in the given script.",
        ),
        // SCRIPTEXECUTE keeps RedisAI's three-list signature.
        (
            "AI.SCRIPTEXECUTE legacy bar INPUTS 2 a b OUTPUTS 1 c",
            "ERR Wrong number of inputs in function bar. Expected 3 but was 2",
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(error_text(run_str(&mut c, command)), expected, "{command}");
    }
    // The three-list functions run through both commands, as before.
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTRUN s bar INPUTS a b OUTPUTS c").expect("run"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c").expect("execute"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("ping"),
        Value::SimpleString("PONG".into())
    );
}
