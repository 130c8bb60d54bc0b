//! A global allocator that takes memory from glibc's `malloc` even where the host
//! process's `malloc` is another one.
//!
//! Debian's redis-server links jemalloc, which then serves every `malloc` in the
//! process, plugins included. jemalloc gives large freed blocks back to the system, so a
//! plugin that allocates a buffer of the same size on every run (a copy of an input, an
//! output it owns) faults all of its pages in again each time; glibc keeps blocks of
//! the sizes a process repeats (its mmap threshold follows them). Measured on a 3 MiB
//! input copied by the ONNX plugin: 768 page faults per run under jemalloc, none under
//! glibc.
//!
//! A plugin opts in with
//! `#[global_allocator] static ALLOCATOR: SystemAllocator = SystemAllocator;`. Its own
//! memory then never mixes with the host's: what it allocates it frees itself (the ABI
//! makes each side free its own), and memory the host lends is never freed here.
//! Elsewhere than glibc it is Rust's `System` allocator.

use std::alloc::{GlobalAlloc, Layout};

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemAllocator;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_void;

    // glibc's own entry points, exported beside `malloc` and not replaced by an
    // allocator that interposes `malloc`.
    extern "C" {
        pub fn __libc_malloc(size: usize) -> *mut c_void;
        pub fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
        pub fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        pub fn __libc_memalign(alignment: usize, size: usize) -> *mut c_void;
        pub fn __libc_free(ptr: *mut c_void);
    }

    /// What glibc's `malloc` aligns every block to on 64-bit targets.
    pub const MALLOC_ALIGNMENT: usize = 16;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
// SAFETY: every block comes from glibc with at least the layout's size and alignment
// (`malloc`/`calloc`/`realloc` align to 16, larger alignments go through `memalign`),
// and is freed by glibc's `free`, which takes blocks from all of them.
unsafe impl GlobalAlloc for SystemAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= glibc::MALLOC_ALIGNMENT {
            glibc::__libc_malloc(layout.size()).cast()
        } else {
            glibc::__libc_memalign(layout.align(), layout.size()).cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= glibc::MALLOC_ALIGNMENT {
            glibc::__libc_calloc(1, layout.size()).cast()
        } else {
            let block = self.alloc(layout);
            if !block.is_null() {
                std::ptr::write_bytes(block, 0, layout.size());
            }
            block
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        glibc::__libc_free(ptr.cast());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= glibc::MALLOC_ALIGNMENT {
            return glibc::__libc_realloc(ptr.cast(), new_size).cast();
        }
        // SAFETY: the caller guarantees `new_size` forms a valid layout with this
        // alignment.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let block = self.alloc(new_layout);
        if !block.is_null() {
            std::ptr::copy_nonoverlapping(ptr, block, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        block
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
// SAFETY: forwards to Rust's system allocator unchanged.
unsafe impl GlobalAlloc for SystemAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        std::alloc::System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        std::alloc::System.realloc(ptr, layout, new_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_their_alignment_size_and_contents() {
        let allocator = SystemAllocator;
        for align in [1, 8, 16, 64, 4096] {
            for size in [1, 100, 1 << 20] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero layout; the block is written within its size and
                // freed once with the same layout.
                unsafe {
                    let zeroed = allocator.alloc_zeroed(layout);
                    assert!(!zeroed.is_null());
                    assert_eq!(zeroed as usize % align, 0, "align {align} size {size}");
                    assert!(std::slice::from_raw_parts(zeroed, size)
                        .iter()
                        .all(|&b| b == 0));
                    std::ptr::write_bytes(zeroed, 0xab, size);
                    let grown = allocator.realloc(zeroed, layout, size * 2);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0);
                    assert!(std::slice::from_raw_parts(grown, size)
                        .iter()
                        .all(|&b| b == 0xab));
                    allocator.dealloc(
                        grown,
                        Layout::from_size_align(size * 2, align).expect("layout"),
                    );
                }
            }
        }
    }
}
