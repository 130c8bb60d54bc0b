//! The namespace on this machine's libc and TensorFlow's libraries.

use std::ptr;

use super::*;

#[test]
fn the_namespace_hands_out_keys_above_the_hosts() {
    let mut host_key: libc::pthread_key_t = 0;
    // SAFETY: a valid out-pointer, no destructor.
    assert_eq!(unsafe { libc::pthread_key_create(&mut host_key, None) }, 0);
    assert!((host_key as usize) < RESERVED_KEYS);
    namespace(&[]).expect("namespace");
    let libc_handle = {
        let slot = NAMESPACE.lock().unwrap_or_else(PoisonError::into_inner);
        let id = slot.expect("made").id;
        // SAFETY: libc.so.6 is loaded in the namespace already: this only finds it.
        Handle(unsafe {
            libc::dlmopen(
                id,
                c"libc.so.6".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_NOLOAD,
            )
        })
    };
    assert!(!libc_handle.0.is_null());
    type KeyCreate = unsafe extern "C" fn(
        *mut libc::pthread_key_t,
        Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> c_int;
    // SAFETY: the namespace libc's pthread_key_create, of this signature.
    let key_create = unsafe {
        std::mem::transmute::<*mut c_void, KeyCreate>(
            symbol(libc_handle, c"pthread_key_create").expect("symbol"),
        )
    };
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: a valid out-pointer, no destructor.
    assert_eq!(unsafe { key_create(&mut key, None) }, 0);
    assert!(key as usize >= RESERVED_KEYS, "{key}");
    // The host's keys go on from where they were.
    let mut next: libc::pthread_key_t = 0;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::pthread_key_create(&mut next, None) }, 0);
    assert!((next as usize) < RESERVED_KEYS);
}

extern "C" fn nothing(_: *mut c_void) -> *mut c_void {
    ptr::null_mut()
}

#[test]
fn the_shim_unmaps_the_stacks_of_detached_threads_that_ended() {
    let ns = namespace(&[]).expect("namespace");
    let (_, before) = ns.thread_stacks().expect("the threads shim is in use");
    let start = || {
        let mut thread: libc::pthread_t = 0;
        // SAFETY: the namespace's pthread_create with a valid out-pointer, default
        // attributes and an entry point that returns at once.
        let failed =
            unsafe { (ns.pthread_create)(&mut thread, ptr::null(), nothing, ptr::null_mut()) };
        assert_eq!(failed, 0);
        thread
    };
    for _ in 0..4 {
        let thread = start();
        // SAFETY: a thread just made by the namespace, detached once.
        assert_eq!(unsafe { (ns.pthread_detach)(thread) }, 0);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The next create (or detach) joins the ended ones and unmaps their stacks.
    let last = start();
    // SAFETY: as above.
    assert_eq!(unsafe { (ns.pthread_detach)(last) }, 0);
    let (_, after) = ns.thread_stacks().expect("the threads shim is in use");
    assert!(after >= before + 4, "{before} -> {after}");
}
