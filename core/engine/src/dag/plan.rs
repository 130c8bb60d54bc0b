//! Turning parsed DAG ops into a plan: every tensor name becomes numbered versions
//! (slots), every op knows the slots it reads and writes and the ops it waits for.
//! All errors a DAG can have before it runs are found here.

use std::collections::HashMap;
use std::sync::Arc;

use super::parse::{DagArgs, OpSpec};
use crate::backend::OutputBudget;
use crate::model::parse::ParseError;
use crate::model::Model;
use crate::script::{Calling, Script};
use crate::tensor::parse::GetFormat;
use crate::tensor::Tensor;

pub enum OpKind {
    TensorSet(Arc<Tensor>),
    TensorGet(GetFormat),
    Model(Arc<Model>),
    Script {
        script: Arc<Script>,
        function: String,
        args: Vec<Vec<u8>>,
        calling: Calling,
    },
}

pub struct PlannedOp {
    pub kind: OpKind,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    /// Ops that produce this op's inputs.
    pub deps: Vec<usize>,
}

pub struct Plan {
    /// Keys loaded from the keyspace, into slots `0..load.len()`.
    pub load: Vec<Vec<u8>>,
    pub ops: Vec<PlannedOp>,
    /// Keys written back at the end, with the slot holding their final version.
    pub persist: Vec<(Vec<u8>, usize)>,
    pub slot_count: usize,
    pub timeout_ms: Option<u64>,
    /// KEYS given to the DAG: what its scripts may touch.
    pub keys: Vec<Vec<u8>>,
    /// The caller's database and ACL user, for its scripts (set by the command).
    pub db: i32,
    pub user: Option<Vec<u8>>,
    /// What the outputs of all its model and script ops may take together (set by the
    /// command).
    pub output_budget: OutputBudget,
}

fn err<T>(text: &str) -> Result<T, ParseError> {
    Err(ParseError(text.to_owned()))
}

/// Looks a model key up in the keyspace.
pub type ModelLookup<'a> = dyn Fn(&[u8]) -> Result<Arc<Model>, ParseError> + 'a;

/// Looks a script key up in the keyspace.
pub type ScriptLookup<'a> = dyn Fn(&[u8]) -> Result<Arc<Script>, ParseError> + 'a;

/// Plans `dag`; `model` and `script` look keys up in the keyspace.
pub fn plan(
    dag: &DagArgs<'_>,
    model: &ModelLookup<'_>,
    script: &ScriptLookup<'_>,
) -> Result<Plan, ParseError> {
    let mut latest: HashMap<&[u8], usize> = HashMap::new();
    let mut producer: Vec<Option<usize>> = Vec::new();
    for name in &dag.load {
        latest.insert(name, producer.len());
        producer.push(None);
    }
    let mut ops = Vec::with_capacity(dag.ops.len());
    for (index, spec) in dag.ops.iter().enumerate() {
        let (kind, input_names, output_names): (OpKind, Vec<&[u8]>, Vec<&[u8]>) = match spec {
            OpSpec::TensorSet { name, tensor } => {
                let tensor = tensor
                    .clone()
                    .build()
                    .map_err(|e| ParseError(e.to_string()))?;
                (OpKind::TensorSet(Arc::new(tensor)), vec![], vec![name])
            }
            OpSpec::TensorGet { name, format } => (OpKind::TensorGet(*format), vec![name], vec![]),
            OpSpec::ModelExecute {
                model_key,
                inputs,
                outputs,
            } => {
                let model = model(model_key)?;
                check_model_arity(&model, inputs.len(), outputs.len())?;
                (OpKind::Model(model), inputs.clone(), outputs.clone())
            }
            OpSpec::ScriptExecute {
                script_key,
                function,
                inputs,
                args,
                outputs,
                calling,
            } => {
                let script = script(script_key)?;
                let function = String::from_utf8(function.to_vec())
                    .map_err(|_| ParseError("ERR function name must be UTF-8".into()))?;
                let kind = OpKind::Script {
                    script,
                    function,
                    args: args.iter().map(|a| a.to_vec()).collect(),
                    calling: *calling,
                };
                (kind, inputs.clone(), outputs.clone())
            }
        };
        let mut inputs = Vec::with_capacity(input_names.len());
        let mut deps = Vec::new();
        for name in input_names {
            let Some(&slot) = latest.get(name) else {
                return err("ERR INPUT key cannot be found in DAG");
            };
            inputs.push(slot);
            if let Some(op) = producer[slot] {
                if !deps.contains(&op) {
                    deps.push(op);
                }
            }
        }
        let mut outputs = Vec::with_capacity(output_names.len());
        for name in output_names {
            let slot = producer.len();
            producer.push(Some(index));
            latest.insert(name, slot);
            outputs.push(slot);
        }
        ops.push(PlannedOp {
            kind,
            inputs,
            outputs,
            deps,
        });
    }
    let mut persist = Vec::with_capacity(dag.persist.len());
    for name in &dag.persist {
        let Some(&slot) = latest.get(name) else {
            return err("ERR PERSIST key cannot be found in DAG");
        };
        if persist
            .iter()
            .any(|(key, _): &(Vec<u8>, usize)| key.as_slice() == *name)
        {
            return err("ERR PERSIST keys must be unique");
        }
        persist.push((name.to_vec(), slot));
    }
    Ok(Plan {
        load: dag.load.iter().map(|k| k.to_vec()).collect(),
        ops,
        persist,
        slot_count: producer.len(),
        timeout_ms: dag.timeout_ms,
        keys: dag.keys.iter().map(|k| k.to_vec()).collect(),
        db: 0,
        user: None,
        output_budget: OutputBudget::unlimited(),
    })
}

fn check_model_arity(model: &Model, inputs: usize, outputs: usize) -> Result<(), ParseError> {
    let expected_inputs = model.input_names().len();
    if expected_inputs != 0 && expected_inputs != inputs {
        return err("ERR Number of keys given as INPUTS here does not match model definition");
    }
    let expected_outputs = model.output_names().len();
    if expected_outputs != 0 && expected_outputs != outputs {
        return err("ERR Number of keys given as OUTPUTS here does not match model definition");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::parse::{parse_dag, DagFlavor};
    use crate::device::Device;
    use crate::model::{Batching, ModelDefinition};

    fn words(text: &str) -> Vec<&[u8]> {
        text.split_whitespace().map(str::as_bytes).collect()
    }

    fn test_model(_key: &[u8]) -> Result<Arc<Model>, ParseError> {
        Ok(Arc::new(Model::without_runtime(ModelDefinition {
            backend: "TEST".into(),
            device: Device::CPU,
            device_name: "CPU".into(),
            tag: Vec::new(),
            batching: Batching::default(),
            inputs: vec!["a".into(), "b".into()],
            outputs: vec!["c".into()],
            blob: Vec::new(),
        })))
    }

    fn planned(text: &str) -> Result<Plan, ParseError> {
        let args = words(text);
        let dag = parse_dag(
            &args,
            DagFlavor {
                read_only: false,
                deprecated: false,
            },
        )?;
        plan(&dag, &test_model, &|_key: &[u8]| {
            Err(ParseError("ERR script key is empty".into()))
        })
    }

    #[test]
    fn script_ops_read_and_write_versions_and_carry_the_dag_keys() {
        let args = words(
            "KEYS 1 k LOAD 1 a |> AI.SCRIPTEXECUTE s f INPUTS 2 a a ARGS 1 x OUTPUTS 2 b c \
             |> AI.TENSORGET c VALUES",
        );
        let flavor = DagFlavor {
            read_only: false,
            deprecated: false,
        };
        let dag = parse_dag(&args, flavor).expect("parse");
        let script = |key: &[u8]| {
            assert_eq!(key, b"s");
            Ok(Arc::new(crate::script::Script {
                device: Device::CPU,
                device_name: "CPU".into(),
                tag: Vec::new(),
                entry_points: vec!["f".into()],
                source: Vec::new(),
                runtime: Err("no backend in unit tests".into()),
                stats: Default::default(),
            }))
        };
        let planned = plan(&dag, &test_model, &script).expect("plan");
        assert_eq!(planned.keys, vec![b"k".to_vec()]);
        let op = &planned.ops[0];
        assert!(
            matches!(&op.kind, OpKind::Script { function, args, .. } if function == "f" && args == &vec![b"x".to_vec()])
        );
        assert_eq!(op.inputs, vec![0, 0]);
        assert_eq!(op.outputs, vec![1, 2]);
        assert_eq!(planned.ops[1].inputs, vec![2]);
        assert_eq!(planned.ops[1].deps, vec![0]);
        let missing = plan(&dag, &test_model, &|_key: &[u8]| {
            Err(ParseError("ERR script key is empty".into()))
        });
        assert_eq!(
            missing.err().map(|e| e.0).as_deref(),
            Some("ERR script key is empty")
        );
    }

    #[test]
    fn names_become_versions_and_dependencies() {
        let plan = planned(
            "LOAD 1 a PERSIST 1 c |> AI.TENSORSET b FLOAT 1 |> AI.MODELEXECUTE m INPUTS 2 a b \
             OUTPUTS 1 c |> AI.TENSORSET a FLOAT 1 |> AI.MODELEXECUTE m INPUTS 2 a c OUTPUTS 1 c \
             |> AI.TENSORGET c VALUES",
        )
        .expect("valid");
        assert_eq!(plan.slot_count, 5);
        assert_eq!(plan.ops[1].inputs, vec![0, 1]);
        assert_eq!(plan.ops[1].deps, vec![0]);
        assert_eq!(plan.ops[3].inputs, vec![3, 2], "the new a and the first c");
        assert_eq!(plan.ops[3].deps, vec![2, 1]);
        assert_eq!(plan.ops[4].inputs, vec![4]);
        assert_eq!(
            plan.persist,
            vec![(b"c".to_vec(), 4)],
            "the last version is persisted"
        );
    }

    #[test]
    fn planning_errors() {
        for (text, expected) in [
            (
                "ROUTING r |> AI.TENSORGET nothing VALUES",
                "ERR INPUT key cannot be found in DAG",
            ),
            (
                "PERSIST 1 never |> AI.TENSORSET a FLOAT 1",
                "ERR PERSIST key cannot be found in DAG",
            ),
            (
                "PERSIST 2 a a |> AI.TENSORSET a FLOAT 1",
                "ERR PERSIST keys must be unique",
            ),
            (
                "LOAD 1 a |> AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 c",
                "ERR Number of keys given as INPUTS here does not match model definition",
            ),
            (
                "LOAD 1 a |> AI.MODELEXECUTE m INPUTS 2 a a OUTPUTS 2 c d",
                "ERR Number of keys given as OUTPUTS here does not match model definition",
            ),
        ] {
            match planned(text) {
                Ok(_) => panic!("{text} should fail"),
                Err(error) => assert_eq!(error.0, expected, "{text}"),
            }
        }
    }
}
