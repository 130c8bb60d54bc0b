//! The threads TensorFlow is called on: made by the `pthread_create` of TensorFlow's own
//! namespace (its threads shim's, over its libc's: see [`super::namespace`] for why no host
//! thread may run TensorFlow code), named
//! `tf-call`, and never ending. A call is handed to an idle one, or to a new one when all
//! are busy, so a call never waits behind another (a session close that cancels a long
//! run must not wait for that run); the caller waits for its call to finish.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::namespace::Namespace;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job and not yet promised one.
    idle: usize,
    /// Wake-ups promised to idle threads (each takes one).
    wakeups: usize,
    threads: usize,
    /// The kernel thread ids of the threads, as they start.
    thread_ids: Vec<libc::pid_t>,
}

/// The process's pool of TensorFlow threads.
pub struct Pool {
    namespace: Namespace,
    state: Mutex<State>,
    wake: Condvar,
}

static POOL: OnceLock<Pool> = OnceLock::new();

thread_local! {
    /// Whether this thread is one of the pool's.
    static ON_POOL: Cell<bool> = const { Cell::new(false) };
}

/// The kernel thread ids of the pool's threads (they never end).
pub fn call_thread_ids() -> Vec<libc::pid_t> {
    POOL.get()
        .map_or_else(Vec::new, |pool| pool.lock().thread_ids.clone())
}

/// Whether the calling thread is one of TensorFlow's call threads.
pub fn on_pool_thread() -> bool {
    ON_POOL.with(Cell::get)
}

impl Pool {
    /// The process's pool, for the threads of `namespace` (the first caller's).
    pub fn get(namespace: Namespace) -> &'static Pool {
        POOL.get_or_init(|| Pool {
            namespace,
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                wakeups: 0,
                threads: 0,
                thread_ids: Vec::new(),
            }),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` and makes sure a thread will look at the queue: an idle one, or a new
    /// one. Fails only when no thread exists and none can be made.
    fn submit(&'static self, job: Job) -> Result<(), String> {
        let mut state = self.lock();
        state.jobs.push_back(job);
        if state.idle > 0 {
            state.idle -= 1;
            state.wakeups += 1;
            drop(state);
            self.wake.notify_one();
            return Ok(());
        }
        match self.start_thread() {
            Ok(()) => {
                state.threads += 1;
                Ok(())
            }
            // A busy thread takes the job when it is done.
            Err(_) if state.threads > 0 => Ok(()),
            Err(err) => {
                state.jobs.pop_back();
                Err(err)
            }
        }
    }

    fn start_thread(&'static self) -> Result<(), String> {
        let mut thread: libc::pthread_t = 0;
        let arg = (self as *const Pool).cast_mut().cast::<c_void>();
        // SAFETY: the namespace's pthread_create with a valid out-pointer, default
        // attributes, an entry point that never unwinds, and a pointer to the 'static pool.
        let failed =
            unsafe { (self.namespace.pthread_create)(&mut thread, std::ptr::null(), serve, arg) };
        if failed != 0 {
            return Err(format!(
                "could not start a TensorFlow thread (pthread_create: error {failed})"
            ));
        }
        // SAFETY: a thread just made by the same libc, detached once.
        unsafe { (self.namespace.pthread_detach)(thread) };
        Ok(())
    }

    /// Runs `call` on one of the pool's threads and returns its result (a panic in it is
    /// resumed here). On a pool thread already, runs it in place.
    pub fn call<'a, R: Send + 'a>(
        &'static self,
        call: impl FnOnce() -> R + Send + 'a,
    ) -> Result<R, String> {
        if on_pool_thread() {
            return Ok(call());
        }
        let mut result: Option<std::thread::Result<R>> = None;
        let slot = SendPtr((&mut result as *mut Option<std::thread::Result<R>>).cast());
        let done = Arc::new(Done::default());
        let finished = Arc::clone(&done);
        let job: Box<dyn FnOnce() + Send + 'a> = Box::new(move || {
            let slot = slot;
            let value = catch_unwind(AssertUnwindSafe(call));
            // SAFETY: `slot` points to `result` in the frame of `call`, which waits below
            // until `finished` is signalled, so it is alive; nothing else touches it
            // meanwhile.
            unsafe { *slot.0.cast::<Option<std::thread::Result<R>>>() = Some(value) };
            finished.signal();
        });
        // SAFETY: the job borrows data of lifetime 'a. It runs at most once, and `call`
        // does not return before the job has finished with those borrows: it waits for
        // `done`, which the job signals only after its last use of them (the call, whose
        // captures it consumes, and the write of the result). If the job is not queued,
        // it is dropped unrun inside `submit`, before this function returns.
        let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Job>(job) };
        self.submit(job)?;
        done.wait();
        match result {
            Some(Ok(value)) => Ok(value),
            Some(Err(panic)) => resume_unwind(panic),
            None => Err("a TensorFlow call thread did not return a result".to_owned()),
        }
    }

    /// Runs `job` on one of the pool's threads, without waiting for it.
    pub fn spawn(&'static self, job: impl FnOnce() + Send + 'static) -> Result<(), String> {
        self.submit(Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(job));
        }))
    }
}

/// A raw pointer that may be sent to the pool thread (see the SAFETY notes of its use).
struct SendPtr(*mut c_void);

// SAFETY: used only by `Pool::call`, whose caller waits while the pool thread writes
// through it.
unsafe impl Send for SendPtr {}

#[derive(Default)]
struct Done {
    finished: Mutex<bool>,
    wake: Condvar,
}

impl Done {
    fn signal(&self) {
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    fn wait(&self) {
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        while !*finished {
            finished = self
                .wake
                .wait(finished)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A pool thread: takes jobs for ever. Jobs catch their own panics.
extern "C" fn serve(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the 'static pool that started this thread.
    let pool = unsafe { &*arg.cast_const().cast::<Pool>() };
    ON_POOL.with(|on| on.set(true));
    // SAFETY: PR_SET_NAME takes a NUL-terminated name of at most 16 bytes; it names the
    // calling thread only.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"tf-call".as_ptr()) };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let mut state = pool.lock();
    state.thread_ids.push(tid);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            job();
            state = pool.lock();
            continue;
        }
        state.idle += 1;
        loop {
            state = pool
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            if state.wakeups > 0 {
                state.wakeups -= 1;
                break;
            }
        }
    }
}
