//! The paths one ONNX model run is measured on, side by side: in this process (the
//! backend directly, and through the plugin's C ABI) and through the server.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};
use redisai_benches::plugin::{self, HostConfig, Input, Model, Plugin};
use redisai_onnxruntime::{OnnxBackend, OnnxModel};
use redisai_plugin_api::sdk::{DType, Device, DeviceKind, TensorRef};

use super::overhead::InProcess;
use super::{store_model, InlineLimit};
use redisai_benches::shared::{
    close_enough, expect_blob, expect_ok, f32_bytes, f32_values, tensorset_f32,
};

/// The ways one model run is made, measured side by side.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Direct,
    DirectAbi,
    Execute,
    ExecuteOnWorker,
    ExecuteGet,
    ExecuteGetPipelined,
    Ping,
}

impl Call {
    pub(crate) const ALL: [Call; 7] = [
        Call::Direct,
        Call::DirectAbi,
        Call::Execute,
        Call::ExecuteOnWorker,
        Call::ExecuteGet,
        Call::ExecuteGetPipelined,
        Call::Ping,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Call::Direct => "direct `OnnxBackend::run`, in process (baseline)",
            Call::DirectAbi => {
                "direct through the plugin's C ABI, with a cancel flag and a 5000 ms \
                 timeout (the module's exact backend call), in process"
            }
            Call::Execute => "`AI.MODELEXECUTE`",
            Call::ExecuteOnWorker => {
                "`AI.MODELEXECUTE` with every run on a run-queue thread \
                 (INLINE_EXECUTION_LIMIT_US 0)"
            }
            Call::ExecuteGet => "`AI.MODELEXECUTE`, then `AI.TENSORGET y BLOB`",
            Call::ExecuteGetPipelined => "`AI.MODELEXECUTE` + `AI.TENSORGET y BLOB`, pipelined",
            Call::Ping => "`PING` (a bare round trip, for reference)",
        }
    }

    /// The path's name in the CSV, shared with the other overhead tables.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Call::Direct => "in process",
            Call::DirectAbi => "in process, C ABI",
            Call::Execute => "AI.MODELEXECUTE",
            Call::ExecuteOnWorker => "AI.MODELEXECUTE on a worker",
            Call::ExecuteGet => "+ AI.TENSORGET",
            Call::ExecuteGetPipelined => "+ AI.TENSORGET, pipelined",
            Call::Ping => "PING",
        }
    }

    pub(crate) fn round_trips(self) -> u32 {
        match self {
            Call::Direct | Call::DirectAbi => 0,
            Call::ExecuteGet => 2,
            Call::Execute | Call::ExecuteOnWorker | Call::ExecuteGetPipelined | Call::Ping => 1,
        }
    }

    /// Whether "added" (over the direct baseline) means something for this row.
    pub(crate) fn runs_model(self) -> bool {
        self != Call::Ping
    }
}

/// One MLP case: its model in Redis and in process, and the packed commands.
pub(crate) struct OverheadCase<'a> {
    pub(crate) con: &'a mut Connection,
    backend: &'a OnnxBackend,
    model: OnnxModel,
    /// The same model loaded through the plugin's ABI (linked in), called with a cancel
    /// flag and the module's default MODEL_EXECUTION_TIMEOUT, as the module calls it.
    plugin: Model,
    shape: [i64; 2],
    input: Vec<u8>,
    output_len: usize,
    execute: Vec<u8>,
    get: Vec<u8>,
    execute_get: Vec<u8>,
    ping: Vec<u8>,
}

impl<'a> OverheadCase<'a> {
    pub(crate) fn new(
        con: &'a mut Connection,
        in_process: &'a InProcess,
        name: &str,
        blob: &[u8],
        input_values: &[f32],
    ) -> Result<Self> {
        let backend = &in_process.backend;
        let model = backend
            .load(blob)
            .map_err(|err| anyhow!("loading {name} in process: {err}"))?;
        let settings = &in_process.settings;
        plugin::set_thread_settings(settings.intra_op, settings.inter_op);
        let plugin = Plugin::from_entry(
            redisai_onnxruntime::redisai_plugin_entry,
            HostConfig::ModuleDefaults,
        )
        .and_then(|plugin| plugin.load(blob, &[], &[]))
        .with_context(|| format!("loading {name} through the plugin ABI"))?
        .with_cancel_flag();
        let model_key = format!("bench:{name}");
        let (x, y) = (format!("bench:{name}:x"), format!("bench:{name}:y"));
        let shape = [1, input_values.len() as i64];
        let input = f32_bytes(input_values);
        store_model(con, &model_key, blob)?;
        tensorset_f32(con, &x, &shape, &input)?;
        let mut execute = redis::cmd("AI.MODELEXECUTE");
        execute
            .arg(&model_key)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg(&y);
        let execute = execute.get_packed_command();
        let get = redis::cmd("AI.TENSORGET")
            .arg(&y)
            .arg("BLOB")
            .get_packed_command();
        let execute_get = [execute.as_slice(), get.as_slice()].concat();
        let mut case = OverheadCase {
            con,
            backend,
            model,
            plugin,
            shape,
            input,
            output_len: 0,
            execute,
            get,
            execute_get,
            ping: redis::cmd("PING").get_packed_command(),
        };
        case.output_len = case.direct()?.len();
        Ok(case)
    }

    fn input(&self) -> TensorRef<'_> {
        TensorRef {
            dtype: DType::Float,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape: &self.shape,
            data: &self.input,
        }
    }

    /// Runs the model in process; returns the output's bytes.
    fn direct(&self) -> Result<Vec<u8>> {
        let mut outputs = self
            .backend
            .run(&self.model, 0, &[self.input()], 1)
            .map_err(|err| anyhow!("direct run: {err}"))?;
        ensure!(
            outputs.len() == 1,
            "direct run: {} outputs, expected 1",
            outputs.len()
        );
        Ok(outputs.swap_remove(0).data.into_vec())
    }

    /// Checks that the module and the direct call compute the same output, and
    /// returns it.
    pub(crate) fn verify(&mut self) -> Result<Vec<f32>> {
        let direct = f32_values(&self.direct()?);
        let abi_len = self
            .plugin
            .run(&Input::float(&self.shape, &self.input), None)?;
        ensure!(
            abi_len == self.output_len,
            "the run through the plugin ABI gave {abi_len} bytes, expected {}",
            self.output_len
        );
        expect_ok(self.con.req_packed_command(&self.execute)?).context("AI.MODELEXECUTE")?;
        let module = f32_values(&expect_blob(
            self.con.req_packed_command(&self.get)?,
            self.output_len,
        )?);
        ensure!(
            direct.len() == module.len()
                && direct
                    .iter()
                    .zip(&module)
                    .all(|(a, b)| close_enough(*a, *b)),
            "the module's output differs from the direct run's"
        );
        Ok(direct)
    }

    fn once(&mut self, call: Call) -> Result<()> {
        match call {
            Call::Direct => {
                self.direct()?;
            }
            Call::DirectAbi => {
                let len = self
                    .plugin
                    .run(&Input::float(&self.shape, &self.input), None)?;
                ensure!(len == self.output_len, "ABI run: {len} bytes");
            }
            Call::Execute | Call::ExecuteOnWorker => {
                expect_ok(self.con.req_packed_command(&self.execute)?)?
            }
            Call::ExecuteGet => {
                expect_ok(self.con.req_packed_command(&self.execute)?)?;
                expect_blob(self.con.req_packed_command(&self.get)?, self.output_len)?;
            }
            Call::ExecuteGetPipelined => {
                let mut replies = self
                    .con
                    .req_packed_commands(&self.execute_get, 0, 2)?
                    .into_iter();
                let (Some(first), Some(second)) = (replies.next(), replies.next()) else {
                    bail!("expected two replies");
                };
                expect_ok(first)?;
                expect_blob(second, self.output_len)?;
            }
            Call::Ping => {
                let reply = self.con.req_packed_command(&self.ping)?.extract_error()?;
                ensure!(
                    matches!(&reply, Value::SimpleString(s) if s == "PONG"),
                    "expected PONG, got {reply:?}"
                );
            }
        }
        Ok(())
    }

    /// Latencies (ns) of every path, over `rounds` rounds in a rotating order.
    pub(crate) fn measure(&mut self, seconds: f64, rounds: u32) -> Result<Vec<Vec<u64>>> {
        let inline_limit = InlineLimit::read(self.con)?;
        for call in Call::ALL {
            inline_limit.apply(self.con, call == Call::ExecuteOnWorker)?;
            for _ in 0..50 {
                self.once(call)?;
            }
        }
        let per_call =
            Duration::from_secs_f64(seconds / f64::from(rounds) / Call::ALL.len() as f64);
        let mut samples = vec![Vec::new(); Call::ALL.len()];
        for round in 0..rounds as usize {
            for i in 0..Call::ALL.len() {
                let call = Call::ALL[(i + round) % Call::ALL.len()];
                inline_limit.apply(self.con, call == Call::ExecuteOnWorker)?;
                // Warm-up runs after a change of the limit (a model runs inline only
                // after some fast runs), not counted.
                for _ in 0..20 {
                    self.once(call)?;
                }
                let into = &mut samples[call.index()];
                let start = Instant::now();
                loop {
                    let t0 = Instant::now();
                    self.once(call)?;
                    into.push(t0.elapsed().as_nanos() as u64);
                    if start.elapsed() >= per_call {
                        break;
                    }
                }
            }
        }
        inline_limit.apply(self.con, false)?;
        Ok(samples)
    }
}
