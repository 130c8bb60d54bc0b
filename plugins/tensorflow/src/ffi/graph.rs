//! An imported graph and the sessions that run it.

use std::ffi::{c_int, CStr};
use std::ptr;
use std::sync::Arc;

use super::{Buffer, Failure, Object, Output, Runtime, Tensor};

/// An imported graph. Operations found in it stay valid as long as it lives.
pub struct Graph {
    runtime: &'static Runtime,
    raw: Object,
}

// SAFETY: a TF_Graph guards its state with its own mutex; after the import this crate only
// looks operations up and creates sessions on it, which TensorFlow allows from any thread.
unsafe impl Send for Graph {}
// SAFETY: as above.
unsafe impl Sync for Graph {}

impl Graph {
    /// Imports a serialized GraphDef.
    pub fn import(runtime: &'static Runtime, graph_def: &[u8]) -> Result<Graph, Failure> {
        let api = &runtime.api;
        // SAFETY: no preconditions.
        let raw = unsafe { (api.new_graph)() };
        if raw.is_null() {
            return Err(Failure::new("TF_NewGraph failed"));
        }
        let graph = Graph { runtime, raw };
        // SAFETY: no preconditions.
        let options = unsafe { (api.new_import_options)() };
        let buffer = Buffer::borrowed(graph_def);
        let result = runtime.with_status(|status| {
            // SAFETY: live graph, options and status; the buffer borrows `graph_def`, which
            // TensorFlow only reads during the call.
            unsafe { (api.import_graph_def)(graph.raw, &buffer, options, status) }
        });
        // SAFETY: created above, deleted once.
        unsafe { (api.delete_import_options)(options) };
        result.map(|()| graph)
    }

    /// Output `index` of the operation `name`: Err(None) when there is no such operation,
    /// Err(Some(count)) when it has only `count` outputs.
    pub fn output(&self, name: &CStr, index: usize) -> Result<Output, Option<usize>> {
        // SAFETY: live graph and a NUL-terminated name.
        let oper = unsafe { (self.runtime.api.operation_by_name)(self.raw, name.as_ptr()) };
        if oper.is_null() {
            return Err(None);
        }
        // SAFETY: an operation of this live graph.
        let count = unsafe { (self.runtime.api.operation_num_outputs)(oper) };
        let count = usize::try_from(count).unwrap_or(0);
        if index >= count {
            return Err(Some(count));
        }
        Ok(Output {
            oper,
            index: index as c_int,
        })
    }

    /// The `TF_DataType` of an output of this graph.
    pub fn output_type(&self, output: Output) -> c_int {
        // SAFETY: `output` was found in this live graph.
        unsafe { (self.runtime.api.operation_output_type)(output) }
    }

    /// The shape the graph gives an output of this graph (a Placeholder's `shape`
    /// attribute, or what TensorFlow's shape inference found at import): None when its
    /// rank is unknown; -1 for a dimension of unknown size.
    pub fn output_shape(&self, output: Output) -> Option<Vec<i64>> {
        let api = &self.runtime.api;
        let rank = self
            .runtime
            .with_status(|status| {
                // SAFETY: `output` was found in this live graph; live status.
                unsafe { (api.graph_tensor_num_dims)(self.raw, output, status) }
            })
            .ok()?;
        let rank = usize::try_from(rank).ok()?;
        let mut dims = vec![-1i64; rank];
        self.runtime
            .with_status(|status| {
                // SAFETY: as above; `dims` holds `rank` values, the count passed.
                unsafe {
                    (api.graph_tensor_shape)(
                        self.raw,
                        output,
                        dims.as_mut_ptr(),
                        rank as c_int,
                        status,
                    )
                }
            })
            .ok()?;
        Some(dims)
    }

    /// The op type (e.g. "Placeholder") of the operation of an output of this graph.
    pub fn op_type(&self, output: Output) -> String {
        // SAFETY: `output` was found in this live graph; the string is owned by the graph
        // and copied at once.
        let text = unsafe { (self.runtime.api.operation_op_type)(output.oper) };
        if text.is_null() {
            return String::new();
        }
        // SAFETY: as above.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: created by TF_NewGraph, deleted once; TensorFlow defers the deletion
        // while sessions of the graph live (they do not: each holds the graph in an Arc).
        unsafe { (self.runtime.api.delete_graph)(self.raw) };
    }
}

/// A session on a graph. Runs may overlap, and [`Session::close`] may be called from
/// another thread during a run (it cancels the run).
pub struct Session {
    raw: Object,
    graph: Arc<Graph>,
}

// SAFETY: TF_SessionRun and TF_CloseSession may be called on one session from several
// threads at once (TensorFlow's DirectSession locks what it shares).
unsafe impl Send for Session {}
// SAFETY: as above.
unsafe impl Sync for Session {}

impl Session {
    /// A session on `graph` with `config`, a serialized `tensorflow.ConfigProto`.
    pub fn new(graph: &Arc<Graph>, config: &[u8]) -> Result<Session, Failure> {
        let runtime = graph.runtime;
        let api = &runtime.api;
        // SAFETY: no preconditions.
        let options = unsafe { (api.new_session_options)() };
        let result = runtime
            .with_status(|status| {
                // SAFETY: live options and status; TensorFlow copies the bytes.
                unsafe { (api.set_config)(options, config.as_ptr().cast(), config.len(), status) }
            })
            .and_then(|()| {
                runtime.with_status(|status| {
                    // SAFETY: live graph, options and status.
                    unsafe { (api.new_session)(graph.raw, options, status) }
                })
            });
        // SAFETY: created above, deleted once (the session keeps what it needs).
        unsafe { (api.delete_session_options)(options) };
        let raw = result?;
        if raw.is_null() {
            return Err(Failure::new("TF_NewSession returned no session"));
        }
        Ok(Session {
            raw,
            graph: Arc::clone(graph),
        })
    }

    /// Runs the graph: feeds `inputs`, fetches `outputs`. `run_options` is a serialized
    /// `tensorflow.RunOptions` (empty for none).
    pub fn run(
        &self,
        run_options: &[u8],
        inputs: &[(Output, &Tensor)],
        outputs: &[Output],
    ) -> Result<Vec<Tensor>, Failure> {
        let runtime = self.graph.runtime;
        let feeds: Vec<Output> = inputs.iter().map(|(output, _)| *output).collect();
        let values: Vec<Object> = inputs.iter().map(|(_, tensor)| tensor.raw).collect();
        let mut fetched: Vec<Object> = vec![ptr::null_mut(); outputs.len()];
        let options = Buffer::borrowed(run_options);
        let options_ptr = if run_options.is_empty() {
            ptr::null()
        } else {
            &options as *const Buffer
        };
        let n_inputs =
            c_int::try_from(inputs.len()).map_err(|_| Failure::new("too many inputs"))?;
        let n_outputs =
            c_int::try_from(outputs.len()).map_err(|_| Failure::new("too many outputs"))?;
        let result = runtime.with_status(|status| {
            // SAFETY: a live session; `feeds`/`values` hold `n_inputs` entries (the tensors
            // live for the call: the caller borrows them), `outputs`/`fetched` hold
            // `n_outputs`; no targets, no metadata; TensorFlow reads the options during
            // the call only. Fed tensors stay owned by the caller.
            unsafe {
                (runtime.api.session_run)(
                    self.raw,
                    options_ptr,
                    feeds.as_ptr(),
                    values.as_ptr(),
                    n_inputs,
                    outputs.as_ptr(),
                    fetched.as_mut_ptr(),
                    n_outputs,
                    ptr::null(),
                    0,
                    ptr::null_mut(),
                    status,
                )
            }
        });
        // Whatever happened, take ownership of what was fetched so it is freed.
        let tensors: Vec<Option<Tensor>> = fetched
            .into_iter()
            .map(|raw| {
                (!raw.is_null()).then_some(Tensor {
                    runtime,
                    raw,
                    owns_strings: false,
                })
            })
            .collect();
        result?;
        tensors
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Failure::new("TF_SessionRun returned no tensor for an output"))
    }

    /// Closes the session: a run in progress is cancelled (it fails with CANCELLED) and
    /// later runs fail. Callable from any thread.
    pub fn close(&self) {
        let runtime = self.graph.runtime;
        // Closing twice is harmless; a failure leaves nothing to do.
        let _ = runtime.with_status(|status| {
            // SAFETY: a live session (the caller holds it) and status.
            unsafe { (runtime.api.close_session)(self.raw, status) }
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
        let runtime = self.graph.runtime;
        let _ = runtime.with_status(|status| {
            // SAFETY: created by TF_NewSession, deleted once, with no run in progress (a
            // run borrows the session).
            unsafe { (runtime.api.delete_session)(self.raw, status) }
        });
    }
}
