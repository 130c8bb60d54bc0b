//! The clients of the closed loop: through the module (one connection and one pair of
//! tensor keys each), in process (a run queue of workers calling the plugin, as the
//! module's queue does) and over HTTP (the Python model server).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

use crate::load::Client;
use crate::manifest::ModelSpec;
use redisai_benches::plugin::{Input, Model};

pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Through the module

/// What a client sends per call, pipelined in one round trip: its input
/// (AI.TENSORSET), the run (AI.MODELEXECUTE) and the output (AI.TENSORGET ... BLOB);
/// or, for [`ModuleClient::execute_only`], the run alone.
pub struct ModuleClient {
    con: Connection,
    request: Vec<u8>,
    output_len: usize,
    execute_only: bool,
}

impl ModuleClient {
    pub fn new(con: Connection, spec: &ModelSpec, model_key: &str, client: usize) -> Self {
        let (set, execute, get) = Self::commands(spec, model_key, client);
        ModuleClient {
            con,
            request: [set, execute, get].concat(),
            output_len: spec.output.byte_len(),
            execute_only: false,
        }
    }

    /// A client whose input is in the keyspace already (set once here) and whose output
    /// stays there: each call is one AI.MODELEXECUTE, the module's own work with no
    /// tensor data on the socket.
    pub fn execute_only(
        mut con: Connection,
        spec: &ModelSpec,
        model_key: &str,
        client: usize,
    ) -> Result<Self> {
        let (set, execute, _) = Self::commands(spec, model_key, client);
        let reply = con.req_packed_command(&set)?.extract_error()?;
        ensure!(
            reply == Value::Okay,
            "AI.TENSORSET: expected OK, got {reply:?}"
        );
        Ok(ModuleClient {
            con,
            request: execute,
            output_len: spec.output.byte_len(),
            execute_only: true,
        })
    }

    /// The packed AI.TENSORSET, AI.MODELEXECUTE and AI.TENSORGET of client `client`.
    fn commands(spec: &ModelSpec, model_key: &str, client: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let input_key = format!("bm:in:{client}");
        let output_key = format!("bm:out:{client}");
        let mut set = redis::cmd("AI.TENSORSET");
        set.arg(&input_key).arg(&spec.input.dtype);
        for d in &spec.input.shape {
            set.arg(*d);
        }
        set.arg("BLOB").arg(spec.input.sample_data(1));
        let mut execute = redis::cmd("AI.MODELEXECUTE");
        execute
            .arg(model_key)
            .arg("INPUTS")
            .arg(1)
            .arg(&input_key)
            .arg("OUTPUTS")
            .arg(1)
            .arg(&output_key);
        let get = redis::cmd("AI.TENSORGET")
            .arg(&output_key)
            .arg("BLOB")
            .get_packed_command();
        (set.get_packed_command(), execute.get_packed_command(), get)
    }

    /// One call; returns the output's bytes.
    pub fn call_output(&mut self) -> Result<Vec<u8>> {
        ensure!(!self.execute_only, "an execute-only client gets no output");
        let mut replies = self
            .con
            .req_packed_commands(&self.request, 0, 3)?
            .into_iter();
        for what in ["AI.TENSORSET", "AI.MODELEXECUTE"] {
            let reply = replies.next().context("missing reply")?;
            let reply = reply.extract_error().with_context(|| what.to_string())?;
            ensure!(reply == Value::Okay, "{what}: expected OK, got {reply:?}");
        }
        match replies.next().context("missing reply")?.extract_error()? {
            Value::BulkString(bytes) => {
                ensure!(
                    bytes.len() == self.output_len,
                    "AI.TENSORGET: {} bytes, expected {}",
                    bytes.len(),
                    self.output_len
                );
                Ok(bytes)
            }
            other => bail!("AI.TENSORGET: expected a blob, got {other:?}"),
        }
    }
}

impl Client for ModuleClient {
    fn call(&mut self) -> Result<()> {
        if !self.execute_only {
            return self.call_output().map(drop);
        }
        let reply = self
            .con
            .req_packed_command(&self.request)?
            .extract_error()
            .context("AI.MODELEXECUTE")?;
        ensure!(
            reply == Value::Okay,
            "AI.MODELEXECUTE: expected OK, got {reply:?}"
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// In process

type Job = SyncSender<Result<()>>;

/// A run queue in the bench process: `workers` threads (THREADS_PER_QUEUE in the module)
/// take requests in order and run the model on the input, copying the output out as the
/// module copies it into its tensor.
pub struct RunQueue {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl RunQueue {
    pub fn start(model: Arc<Model>, input: Arc<OwnedInput>, workers: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..workers)
            .map(|_| {
                let (model, input, queue) = (model.clone(), input.clone(), queue.clone());
                thread::spawn(move || {
                    let mut output = Vec::new();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(reply) = job else { return };
                        let result = model.run(&input.view(), Some(&mut output)).map(drop);
                        // The client may be gone after a failure of its own: nothing to do.
                        let _ = reply.send(result);
                    }
                })
            })
            .collect();
        RunQueue {
            jobs: Some(jobs),
            workers,
        }
    }

    pub fn client(&self) -> QueueClient {
        let (reply, answers) = mpsc::sync_channel(1);
        QueueClient {
            jobs: self.jobs.clone().expect("the queue is open while it lives"),
            reply,
            answers,
        }
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        // The workers stop once every sender (this one and the clients') is gone.
        self.jobs.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

pub struct QueueClient {
    jobs: Sender<Job>,
    reply: SyncSender<Result<()>>,
    answers: Receiver<Result<()>>,
}

impl Client for QueueClient {
    fn call(&mut self) -> Result<()> {
        self.jobs
            .send(self.reply.clone())
            .map_err(|_| anyhow!("the run queue stopped"))?;
        self.answers
            .recv()
            .map_err(|_| anyhow!("the run queue dropped a request"))?
    }
}

/// An input with its shape and bytes, owned.
pub struct OwnedInput {
    pub dtype: redisai_plugin_api::abi::RaiDType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

impl OwnedInput {
    pub fn new(spec: &ModelSpec, batch: usize) -> Result<Self> {
        Ok(OwnedInput {
            dtype: spec.input.rai_dtype()?,
            shape: spec.input.shape_at(batch as i64),
            data: spec.input.sample_data(batch),
        })
    }

    pub fn view(&self) -> Input<'_> {
        Input {
            dtype: self.dtype,
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// The runtime called directly on this thread (its own batched call, or the large-output
/// row's baseline), with the output copied out or only looked at.
pub struct DirectClient {
    pub model: Arc<Model>,
    pub input: OwnedInput,
    pub output: Vec<u8>,
    pub copy: bool,
}

impl Client for DirectClient {
    fn call(&mut self) -> Result<()> {
        let copy_to = self.copy.then_some(&mut self.output);
        self.model.run(&self.input.view(), copy_to).map(drop)
    }
}

// ---------------------------------------------------------------------------------------
// Over HTTP

/// An HTTP/1.1 keep-alive client of `benches/python/model_server.py`: the input as the
/// raw body, the output as the raw answer.
pub struct HttpClient {
    stream: BufReader<TcpStream>,
    request: Arc<Vec<u8>>,
    output_len: usize,
    body: Vec<u8>,
}

impl HttpClient {
    /// The request bytes for one input of `spec` to model `name`.
    pub fn request(spec: &ModelSpec, name: &str) -> Vec<u8> {
        let body = spec.input.sample_data(1);
        let mut request = format!(
            "POST /v1/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        request
    }

    pub fn connect(port: u16, request: Arc<Vec<u8>>, output_len: usize) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to the model server on port {port}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(HttpClient {
            stream: BufReader::with_capacity(1 << 16, stream),
            request,
            output_len,
            body: Vec::new(),
        })
    }

    fn read_response(&mut self) -> Result<()> {
        let mut line = String::new();
        ensure!(
            self.stream.read_line(&mut line)? > 0,
            "the model server closed the connection"
        );
        let status = line.split_whitespace().nth(1).unwrap_or("");
        ensure!(status == "200", "model server: {}", line.trim_end());
        let mut content_length = None;
        loop {
            line.clear();
            ensure!(
                self.stream.read_line(&mut line)? > 0,
                "model server closed the connection"
            );
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let len = content_length.context("model server: no Content-Length")?;
        ensure!(
            len == self.output_len,
            "model server: {len} bytes, expected {}",
            self.output_len
        );
        self.body.resize(len, 0);
        self.stream.read_exact(&mut self.body)?;
        Ok(())
    }
}

impl Client for HttpClient {
    fn call(&mut self) -> Result<()> {
        self.stream.get_mut().write_all(&self.request)?;
        self.read_response()
    }
}
