//! The DAG engine: parse (all errors found) -> plan (tensor versions, dependencies)
//! -> run (ops start when their inputs exist, on their devices' queues).

pub mod parse;
pub mod plan;
pub mod run;
