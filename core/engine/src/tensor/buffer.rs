//! One contiguous, 64-byte aligned byte buffer: the storage of every tensor.
//!
//! Backends read tensor data in place through views, so the buffer is aligned for any
//! element type and for SIMD loads.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::NonNull;

const ALIGN: usize = 64;

pub struct AlignedBuffer {
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes allocated (`len` or more, after [`AlignedBuffer::truncate`]).
    capacity: usize,
}

// SAFETY: the buffer exclusively owns its allocation; shared access only hands out `&[u8]`.
unsafe impl Send for AlignedBuffer {}
// SAFETY: see above; `&AlignedBuffer` only allows reads.
unsafe impl Sync for AlignedBuffer {}

/// The allocator could not provide the requested bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    pub bytes: usize,
}

impl AlignedBuffer {
    /// A buffer of `len` zero bytes.
    pub fn zeroed(len: usize) -> Result<Self, AllocError> {
        if len == 0 {
            return Ok(Self::empty());
        }
        let layout = Self::layout(len)?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        Self::from_raw(raw, len)
    }

    /// A buffer of `len` bytes left as the allocator gave them, for a plugin to write
    /// an output into (ABI minor 5's `output_alloc`).
    ///
    /// # Safety
    /// No byte may be read before it was written.
    pub unsafe fn uninit(len: usize) -> Result<Self, AllocError> {
        if len == 0 {
            return Ok(Self::empty());
        }
        let layout = Self::layout(len)?;
        // SAFETY: `layout` has a non-zero size.
        Self::from_raw(unsafe { alloc::alloc(layout) }, len)
    }

    fn from_raw(raw: *mut u8, len: usize) -> Result<Self, AllocError> {
        NonNull::new(raw)
            .map(|ptr| Self {
                ptr,
                len,
                capacity: len,
            })
            .ok_or(AllocError { bytes: len })
    }

    /// A buffer holding a copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Result<Self, AllocError> {
        let len = bytes.len();
        if len == 0 {
            return Ok(Self::empty());
        }
        let layout = Self::layout(len)?;
        // SAFETY: `layout` has a non-zero size.
        let buffer = Self::from_raw(unsafe { alloc::alloc(layout) }, len)?;
        // SAFETY: a fresh allocation of `len` bytes that cannot overlap `bytes`; after
        // the copy every byte is initialised.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.ptr.as_ptr(), len) };
        Ok(buffer)
    }

    fn empty() -> Self {
        // An aligned, dangling, never-dereferenced pointer for the empty buffer.
        let ptr = NonNull::new(ALIGN as *mut u8).unwrap_or(NonNull::dangling());
        Self {
            ptr,
            len: 0,
            capacity: 0,
        }
    }

    /// The layout of `len` bytes; a length no allocation can have (rounded up to the
    /// alignment, past `isize::MAX`) is refused here, before the allocator is called:
    /// Redis's, in the module, aborts the server on a request it cannot meet.
    fn layout(len: usize) -> Result<Layout, AllocError> {
        Layout::from_size_align(len, ALIGN).map_err(|_| AllocError { bytes: len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised bytes (or dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// For a writer outside Rust (a plugin filling a lent output).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Keeps only the first `len` bytes (the allocation stays as it is); a longer `len`
    /// changes nothing.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(layout) = Self::layout(self.capacity) {
            // SAFETY: allocated in `zeroed`, `uninit` or `copy_from` with this layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl Clone for AlignedBuffer {
    fn clone(&self) -> Self {
        match Self::copy_from(self.as_slice()) {
            Ok(buffer) => buffer,
            Err(err) => alloc::handle_alloc_error(
                Layout::from_size_align(err.bytes, ALIGN).unwrap_or(Layout::new::<u8>()),
            ),
        }
    }
}

impl fmt::Debug for AlignedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlignedBuffer({} bytes)", self.len)
    }
}

impl PartialEq for AlignedBuffer {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_zero_and_aligned() {
        let buffer = AlignedBuffer::zeroed(100).expect("alloc");
        assert_eq!(buffer.len(), 100);
        assert!(buffer.as_slice().iter().all(|&b| b == 0));
        assert_eq!(buffer.as_ptr() as usize % ALIGN, 0);
    }

    #[test]
    fn copies_and_clones() {
        let buffer = AlignedBuffer::copy_from(b"hello").expect("alloc");
        assert_eq!(buffer.as_slice(), b"hello");
        let copy = buffer.clone();
        assert_eq!(copy, buffer);
        assert_ne!(copy.as_ptr(), buffer.as_ptr());
    }

    #[test]
    fn truncated_buffer_keeps_its_first_bytes() {
        let mut buffer = AlignedBuffer::copy_from(b"hello world").expect("alloc");
        buffer.truncate(5);
        assert_eq!(buffer.as_slice(), b"hello");
        buffer.truncate(50);
        assert_eq!(buffer.len(), 5);
        assert_eq!(buffer.clone().as_slice(), b"hello");
    }

    #[test]
    fn sizes_no_allocation_can_have_are_refused_without_allocating() {
        for len in [
            usize::MAX,
            isize::MAX as usize,
            isize::MAX as usize - ALIGN + 2,
        ] {
            assert_eq!(AlignedBuffer::zeroed(len), Err(AllocError { bytes: len }));
            // SAFETY: refused before anything could be read.
            assert!(unsafe { AlignedBuffer::uninit(len) }.is_err());
        }
    }

    #[test]
    fn empty_buffer() {
        let buffer = AlignedBuffer::zeroed(0).expect("alloc");
        assert!(buffer.is_empty());
        assert_eq!(buffer.as_slice(), b"");
    }
}
