//! The host's thread-specific keys, mirrored into the namespace's libc: the namespace's
//! reserved keys run the host's destructors on TensorFlow's threads.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::RESERVED_KEYS;

/// The host libc's key table (`__pthread_keys`, glibc-private: `PTHREAD_KEYS_MAX` entries of
/// a sequence number, odd while the key is in use, and a destructor), or None when the host
/// libc has none (then host keys get no destructor on TensorFlow's threads, as before).
pub(super) static HOST_KEYS: AtomicPtr<HostKey> = AtomicPtr::new(ptr::null_mut());

/// One entry of glibc's `__pthread_keys` (`struct pthread_key_struct`).
#[repr(C)]
pub struct HostKey {
    seq: usize,
    destructor: Option<unsafe extern "C" fn(*mut c_void)>,
}

pub(super) fn host_key_table() -> Option<*mut HostKey> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the symbol up,
    // in the host's (global) namespace: the host libc's table, if it exports one.
    let table = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__pthread_keys".as_ptr()) };
    (!table.is_null()).then_some(table.cast::<HostKey>())
}

/// The destructor of the namespace's reserved key `K`: runs the host's destructor of its
/// key `K` on `value`, when the host's key `K` is in its first life (sequence number 1: the
/// namespace's key `K` is in its first life too, and the namespace's libc calls this only
/// for a value stored under that sequence number, so the value belongs to the host's key as
/// it is now) and has a destructor.
unsafe extern "C" fn mirror<const K: usize>(value: *mut c_void) {
    let table = HOST_KEYS.load(Ordering::Acquire);
    if table.is_null() || K >= RESERVED_KEYS {
        return;
    }
    // SAFETY: the host's table has PTHREAD_KEYS_MAX (1024) entries, K < 256; it lives as
    // long as the host's libc. The entry is read with plain loads: glibc writes a key's
    // destructor before it publishes the odd sequence number.
    let (seq, destructor) = unsafe {
        let entry = table.add(K);
        (
            ptr::read_volatile(ptr::addr_of!((*entry).seq)),
            ptr::read_volatile(ptr::addr_of!((*entry).destructor)),
        )
    };
    if seq == 1 {
        if let Some(destructor) = destructor {
            // SAFETY: the host's destructor for a value the host's own code stored under
            // this key on this thread, called as the host's libc would at thread exit (the
            // namespace's libc cleared the slot first, and calls again while values remain).
            unsafe { destructor(value) };
        }
    }
}

type Destructor = unsafe extern "C" fn(*mut c_void);

macro_rules! mirror_row {
    ($row:literal) => {
        [
            mirror::<{ $row * 16 }>,
            mirror::<{ $row * 16 + 1 }>,
            mirror::<{ $row * 16 + 2 }>,
            mirror::<{ $row * 16 + 3 }>,
            mirror::<{ $row * 16 + 4 }>,
            mirror::<{ $row * 16 + 5 }>,
            mirror::<{ $row * 16 + 6 }>,
            mirror::<{ $row * 16 + 7 }>,
            mirror::<{ $row * 16 + 8 }>,
            mirror::<{ $row * 16 + 9 }>,
            mirror::<{ $row * 16 + 10 }>,
            mirror::<{ $row * 16 + 11 }>,
            mirror::<{ $row * 16 + 12 }>,
            mirror::<{ $row * 16 + 13 }>,
            mirror::<{ $row * 16 + 14 }>,
            mirror::<{ $row * 16 + 15 }>,
        ]
    };
}

/// The destructors of the reserved keys: `MIRRORS[k / 16][k % 16]` mirrors the host's key k.
pub(super) static MIRRORS: [[Destructor; 16]; RESERVED_KEYS / 16] = [
    mirror_row!(0),
    mirror_row!(1),
    mirror_row!(2),
    mirror_row!(3),
    mirror_row!(4),
    mirror_row!(5),
    mirror_row!(6),
    mirror_row!(7),
    mirror_row!(8),
    mirror_row!(9),
    mirror_row!(10),
    mirror_row!(11),
    mirror_row!(12),
    mirror_row!(13),
    mirror_row!(14),
    mirror_row!(15),
];
