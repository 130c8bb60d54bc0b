//! The reply trees the host hands to plugins (from `redis_command` and
//! `model_execute`): laid out by [`make_reply`], freed by the plugin through
//! `RaiHostApi.reply_free`.

use std::ffi::c_char;

use redisai_plugin_api::abi::{RaiReply, RaiReplyKind};

/// A reply tree the host owns: strings are boxed byte slices with a trailing NUL,
/// elements a boxed slice; [`reply_free`] takes the whole tree back.
pub fn make_reply(value: ReplyValue) -> *mut RaiReply {
    Box::into_raw(Box::new(build(value)))
}

/// A reply before it is laid out for the plugin.
pub enum ReplyValue {
    Nil,
    Integer(i64),
    Double(f64),
    String(Vec<u8>),
    Error(Vec<u8>),
    Array(Vec<ReplyValue>),
}

fn build(value: ReplyValue) -> RaiReply {
    let mut reply = RaiReply {
        kind: RaiReplyKind::Nil,
        integer: 0,
        double_value: 0.0,
        str: std::ptr::null(),
        len: 0,
        elements: std::ptr::null(),
        n_elements: 0,
    };
    let text = |reply: &mut RaiReply, mut bytes: Vec<u8>| {
        reply.len = bytes.len();
        bytes.push(0);
        reply.str = Box::into_raw(bytes.into_boxed_slice()).cast::<c_char>();
    };
    match value {
        ReplyValue::Nil => {}
        ReplyValue::Integer(n) => {
            reply.kind = RaiReplyKind::Integer;
            reply.integer = n;
        }
        ReplyValue::Double(d) => {
            reply.kind = RaiReplyKind::Double;
            reply.double_value = d;
        }
        ReplyValue::String(bytes) => {
            reply.kind = RaiReplyKind::String;
            text(&mut reply, bytes);
        }
        ReplyValue::Error(bytes) => {
            reply.kind = RaiReplyKind::Error;
            text(&mut reply, bytes);
        }
        ReplyValue::Array(items) => {
            reply.kind = RaiReplyKind::Array;
            let elements: Box<[RaiReply]> = items.into_iter().map(build).collect();
            reply.n_elements = elements.len();
            reply.elements = Box::into_raw(elements).cast::<RaiReply>();
        }
    }
    reply
}

/// Frees what `build` allocated inside `reply` (not `reply` itself).
///
/// # Safety
/// `reply` must have been laid out by `build` and not released before.
unsafe fn release_inside(reply: &mut RaiReply) {
    if !reply.str.is_null() {
        let slice =
            std::ptr::slice_from_raw_parts_mut(reply.str.cast_mut().cast::<u8>(), reply.len + 1);
        // SAFETY: allocated by `build` as a boxed slice of `len + 1` bytes.
        drop(unsafe { Box::from_raw(slice) });
        reply.str = std::ptr::null();
    }
    if !reply.elements.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(reply.elements.cast_mut(), reply.n_elements);
        // SAFETY: allocated by `build` as a boxed slice of `n_elements` replies.
        let mut elements = unsafe { Box::from_raw(slice) };
        for element in elements.iter_mut() {
            // SAFETY: each element was laid out by `build`.
            unsafe { release_inside(element) };
        }
        reply.elements = std::ptr::null();
    }
}

pub(super) unsafe extern "C" fn reply_free(reply: *mut RaiReply) {
    let _ = std::panic::catch_unwind(|| {
        if reply.is_null() {
            return;
        }
        // SAFETY: the plugin hands back a root from `make_reply`, exactly once.
        let mut root = unsafe { Box::from_raw(reply) };
        // SAFETY: as above.
        unsafe { release_inside(&mut root) };
    });
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn reply_trees_are_laid_out_and_released() {
        let root = make_reply(ReplyValue::Array(vec![
            ReplyValue::String(b"a\0b".to_vec()),
            ReplyValue::Integer(7),
            ReplyValue::Array(vec![ReplyValue::Nil, ReplyValue::Error(b"ERR x".to_vec())]),
            ReplyValue::Double(1.5),
        ]));
        // SAFETY: `root` was just made by `make_reply`; its elements are laid out by it.
        unsafe {
            let reply = &*root;
            assert_eq!(reply.kind, RaiReplyKind::Array);
            assert_eq!(reply.n_elements, 4);
            let items = std::slice::from_raw_parts(reply.elements, reply.n_elements);
            assert_eq!(items[0].kind, RaiReplyKind::String);
            assert_eq!(
                std::slice::from_raw_parts(items[0].str.cast::<u8>(), items[0].len + 1),
                b"a\0b\0"
            );
            assert_eq!(items[1].integer, 7);
            let nested = std::slice::from_raw_parts(items[2].elements, items[2].n_elements);
            assert_eq!(nested[0].kind, RaiReplyKind::Nil);
            assert_eq!(CStr::from_ptr(nested[1].str).to_bytes(), b"ERR x");
            assert_eq!(items[3].double_value, 1.5);
            reply_free(root);
            reply_free(std::ptr::null_mut());
        }
    }
}
