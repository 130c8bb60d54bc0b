//! `FAULTS`: a test-only backend plugin that misbehaves on purpose, so the tests can
//! show that a faulty backend never takes Redis down. The model blob picks the fault:
//!
//! | blob | load | run |
//! |---|---|---|
//! | `echo` | ok | returns its first input |
//! | `error` | ok | returns an error |
//! | `panic` | ok | panics (the SDK turns it into an error) |
//! | `cpp` | ok | a C++ runtime throws; caught at the C++ boundary, an error |
//! | `slow:<ms>` | ok | sleeps (up to 10 s, stopping early when cancelled), then echoes |
//! | `sleep-input` | ok | sleeps as many ms as its INT64 input's first value says (a model whose run time depends on its data; up to 10 s, stopping early when cancelled or at the run's timeout), then echoes |
//! | `slow-load:<ms>` | sleeps (up to 10 s), then ok | echoes |
//! | `panic-load` | panics | - |
//! | `error-load` | error | - |
//!
//! Built into `target/<profile>/deps/libredisai_faults.so` for the tests; never
//! installed in `dist/`.

use std::ffi::{c_char, CStr};
use std::time::{Duration, Instant};

use redisai_plugin_api::sdk::{
    DType, DeviceKind, Error, Host, ModelOptions, OutputBuffer, OwnedTensor, Plugin, Result,
    RunOptions, TensorRef,
};

pub struct FaultsPlugin;

pub enum Fault {
    Echo,
    Error,
    Panic,
    Cpp,
    Slow(u64),
    SleepInput,
}

/// Longest sleep of the slow faults.
const MAX_SLEEP_MS: u64 = 10_000;

extern "C" {
    fn redisai_faults_cpp_call(message: *mut c_char, capacity: usize) -> i32;
}

fn cpp_call() -> Result<()> {
    let mut message = [0 as c_char; 256];
    // SAFETY: the buffer is writable for `capacity` bytes and the C++ side always
    // NUL-terminates within it.
    let code = unsafe { redisai_faults_cpp_call(message.as_mut_ptr(), message.len()) };
    if code == 0 {
        return Ok(());
    }
    // SAFETY: NUL-terminated within the buffer (see above).
    let text = unsafe { CStr::from_ptr(message.as_ptr()) };
    Err(Error::new(text.to_string_lossy().into_owned()))
}

/// The milliseconds in `<prefix><ms>`, at most [`MAX_SLEEP_MS`].
fn millis_after(blob: &[u8], prefix: &[u8]) -> Option<u64> {
    blob.strip_prefix(prefix)
        .and_then(|ms| std::str::from_utf8(ms).ok())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| ms.min(MAX_SLEEP_MS))
}

impl Plugin for FaultsPlugin {
    type Model = Fault;
    type Script = ();

    const NAME: &'static CStr = c"FAULTS";
    const RUNTIME_VERSION: &'static CStr = c"0.0.0";
    const DEVICES: &'static [DeviceKind] = &[DeviceKind::Cpu];
    const DTYPES: &'static [DType] = &[DType::Float, DType::Int64, DType::Uint8];
    const CONCURRENT_RUN: bool = true;
    /// `sleep-input` stops at the run's timeout, as the flag promises, so it can run
    /// inline; `slow:<ms>` breaks the promise on purpose (the core must still reply on
    /// time to a worker's run that does not stop).
    const INTERRUPTIBLE_RUN: bool = true;

    fn init(_host: Host) -> Result<Self> {
        Ok(FaultsPlugin)
    }

    fn load_model(&self, _options: &ModelOptions, blob: &[u8]) -> Result<Fault> {
        match blob {
            b"echo" => Ok(Fault::Echo),
            b"error" => Ok(Fault::Error),
            b"panic" => Ok(Fault::Panic),
            b"cpp" => Ok(Fault::Cpp),
            b"sleep-input" => Ok(Fault::SleepInput),
            b"panic-load" => panic!("faults: panic while loading a model"),
            b"error-load" => Err(Error::new("faults: refusing to load this model")),
            _ => {
                if let Some(ms) = millis_after(blob, b"slow-load:") {
                    std::thread::sleep(Duration::from_millis(ms));
                    return Ok(Fault::Echo);
                }
                let ms = millis_after(blob, b"slow:")
                    .ok_or_else(|| Error::new("faults: unknown fault"))?;
                Ok(Fault::Slow(ms))
            }
        }
    }

    fn input_names(&self, _model: &Fault) -> Vec<String> {
        vec!["x".to_owned()]
    }

    fn output_names(&self, _model: &Fault) -> Vec<String> {
        vec!["y".to_owned()]
    }

    fn run(
        &self,
        model: &Fault,
        options: &RunOptions,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        match model {
            Fault::Error => return Err(Error::new("faults: this backend fails every run")),
            Fault::Panic => panic!("faults: panic inside run"),
            Fault::Cpp => cpp_call()?,
            Fault::Slow(ms) => sleep(*ms, options, false)?,
            Fault::SleepInput => sleep(first_int64(inputs)?, options, true)?,
            Fault::Echo => {}
        }
        let first = inputs
            .first()
            .ok_or_else(|| Error::invalid_input("faults: needs one input"))?;
        Ok((0..n_outputs)
            .map(|_| OwnedTensor {
                dtype: first.dtype,
                shape: first.shape.to_vec(),
                data: OutputBuffer::copy_from(first.data),
            })
            .collect())
    }
}

/// Sleeps `ms` (at most [`MAX_SLEEP_MS`]), stopping early with an error when the run is
/// cancelled or, with `honour_timeout`, when its timeout passes.
fn sleep(ms: u64, options: &RunOptions, honour_timeout: bool) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(ms.min(MAX_SLEEP_MS));
    let timeout = (honour_timeout && options.timeout_ms > 0)
        .then(|| started + Duration::from_millis(options.timeout_ms));
    while Instant::now() < deadline {
        if options.cancel.is_some_and(|flag| flag.is_set()) {
            return Err(Error::cancelled("faults: cancelled"));
        }
        if timeout.is_some_and(|t| Instant::now() >= t) {
            return Err(Error::timed_out("faults: timed out"));
        }
        std::thread::sleep(
            Duration::from_millis(1).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    Ok(())
}

/// The first value of the first input, which must be INT64.
fn first_int64(inputs: &[TensorRef<'_>]) -> Result<u64> {
    let first = inputs
        .first()
        .filter(|t| t.dtype == DType::Int64)
        .ok_or_else(|| Error::invalid_input("faults: sleep-input needs an INT64 input"))?;
    let bytes: [u8; 8] = first
        .data
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::invalid_input("faults: sleep-input needs a value"))?;
    Ok(u64::try_from(i64::from_ne_bytes(bytes)).unwrap_or(0))
}

#[allow(unsafe_code)]
mod entry {
    redisai_plugin_api::export_plugin!(super::FaultsPlugin);
}

pub use entry::redisai_plugin_entry;

#[cfg(test)]
mod tests {
    use super::*;
    use redisai_plugin_api::sdk::ErrorCode;

    #[test]
    fn a_sleep_past_its_timeout_is_timed_out() {
        let options = RunOptions {
            timeout_ms: 1,
            cancel: None,
            host_ctx: None,
        };
        let err = sleep(1000, &options, true).expect_err("stopped at the timeout");
        assert_eq!(err, Error::timed_out("faults: timed out"));
        assert!(sleep(2, &options, false).is_ok());
    }

    #[test]
    fn sleep_input_checks_its_input() {
        let err = first_int64(&[]).expect_err("no input");
        assert_eq!(err.code(), ErrorCode::InvalidInput);
    }
}
