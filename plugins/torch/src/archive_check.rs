//! Checks the pickles of a TorchScript archive before libtorch reads them.
//!
//! libtorch's unpickler trusts the numbers a pickle declares. A memo index it has not
//! reached yet makes it grow the memo table up to that index, so one flipped bit (a
//! `BINPUT` opcode turned into `LONG_BINPUT`, found by the live fuzzer on mlp.pt) has it
//! allocate billions of entries: tens of GB, in Redis's process. A pickler numbers its
//! memo entries in order, so an index past the next one is refused here, as is a string
//! or bytes length longer than the pickle itself.
//!
//! Only what is positively wrong is refused: an archive this reader cannot follow (not a
//! zip, a damaged directory, an unknown opcode) is left to libtorch, which reports it.

use miniz_oxide::inflate::decompress_to_vec_with_limit;

/// Checks every pickle (`*.pkl`, `*.debug_pkl`) in the archive `blob`.
pub fn check(blob: &[u8]) -> Result<(), String> {
    let Some(entries) = zip_entries(blob) else {
        return Ok(());
    };
    for entry in entries.iter().filter(|e| e.name.ends_with(b"pkl")) {
        if let Some(data) = entry_data(blob, entry) {
            check_pickle(&data).map_err(|reason| {
                format!(
                    "corrupt TorchScript archive: {}: {reason}",
                    String::from_utf8_lossy(&entry.name)
                )
            })?;
        }
    }
    Ok(())
}

/// A pickle opcode's argument, as far as the walk needs it.
enum Arg {
    None,
    Fixed(usize),
    /// A length of this many little-endian bytes, then that many bytes.
    Counted(usize),
    /// Text up to a newline, this many times.
    Lines(usize),
}

fn arg_of(opcode: u8) -> Option<Arg> {
    Some(match opcode {
        b'(' | b'.' | b'0' | b'1' | b'2' | b'N' | b')' | b']' | b'}' | b'a' | b'e' | b'b'
        | b'd' | b'l' | b'o' | b'R' | b's' | b't' | b'u' | b'Q' | 0x81 | 0x85 | 0x86 | 0x87
        | 0x88 | 0x89 | 0x8f | 0x90 | 0x91 | 0x92 | 0x93 | 0x94 | 0x97 | 0x98 => Arg::None,
        b'K' | b'h' | b'q' | 0x80 | 0x82 => Arg::Fixed(1),
        b'M' | 0x83 => Arg::Fixed(2),
        b'J' | b'j' | b'r' | 0x84 => Arg::Fixed(4),
        b'G' => Arg::Fixed(8),
        b'U' | b'C' | 0x8a | 0x8c => Arg::Counted(1),
        b'T' | b'X' | b'B' | 0x8b => Arg::Counted(4),
        0x8d | 0x8e | 0x96 | 0x95 => Arg::Counted(8),
        b'I' | b'L' | b'S' | b'V' | b'F' | b'g' | b'p' | b'P' => Arg::Lines(1),
        b'c' | b'i' => Arg::Lines(2),
        _ => return None,
    })
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |value, &b| (value << 8) | u64::from(b))
}

/// Walks the opcodes of one pickle up to STOP.
pub fn check_pickle(data: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let mut memo_len: u64 = 0;
    while let Some(&opcode) = data.get(at) {
        at += 1;
        let Some(arg) = arg_of(opcode) else {
            return Ok(());
        };
        let rest = &data[at..];
        let (arg_bytes, used) = match arg {
            Arg::None => (&rest[..0], 0),
            Arg::Fixed(n) => match rest.get(..n) {
                Some(bytes) => (bytes, n),
                None => return Ok(()),
            },
            Arg::Counted(width) => {
                let Some(len) = rest.get(..width).map(le) else {
                    return Ok(());
                };
                let remaining = (rest.len() - width) as u64;
                if len > remaining {
                    return Err(format!(
                        "opcode 0x{opcode:02x} at byte {} declares {len} bytes, only {remaining} follow",
                        at - 1
                    ));
                }
                (&rest[..0], width + len as usize)
            }
            Arg::Lines(count) => {
                let mut used = 0;
                for _ in 0..count {
                    match rest[used..].iter().position(|&b| b == b'\n') {
                        Some(end) => used += end + 1,
                        None => return Ok(()),
                    }
                }
                (&rest[..used], used)
            }
        };
        let memo_index = match opcode {
            b'q' | b'r' => Some(le(arg_bytes)),
            b'p' => std::str::from_utf8(arg_bytes)
                .ok()
                .and_then(|text| text.trim_end().parse::<u64>().ok()),
            0x94 => Some(memo_len),
            _ => None,
        };
        if let Some(index) = memo_index {
            if index > memo_len {
                return Err(format!(
                    "memo index {index} at byte {} skips ahead of the {memo_len} entries so far",
                    at - 1
                ));
            }
            memo_len = memo_len.max(index + 1);
        }
        at += used;
        if opcode == b'.' {
            return Ok(());
        }
    }
    Ok(())
}

/// The most a compressed pickle is inflated to for checking.
const MAX_INFLATED: usize = 256 << 20;

struct Entry {
    name: Vec<u8>,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_header: u64,
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const DIRECTORY_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;

/// The central directory's entries, or None when it cannot be read.
fn zip_entries(blob: &[u8]) -> Option<Vec<Entry>> {
    // The end record is the last 22 bytes, before a comment of up to 64 KiB.
    let earliest = blob.len().saturating_sub(22 + 0xffff);
    let end = (earliest..=blob.len().checked_sub(22)?)
        .rev()
        .find(|&at| u32_at(blob, at) == Some(END_OF_DIRECTORY))?;
    let mut count = u64::from(u16_at(blob, end + 10)?);
    let mut offset = u64::from(u32_at(blob, end + 16)?);
    if count == 0xffff || offset == 0xffff_ffff {
        let locator = end.checked_sub(20)?;
        if u32_at(blob, locator)? != ZIP64_LOCATOR {
            return None;
        }
        let zip64_end = usize::try_from(u64_at(blob, locator + 8)?).ok()?;
        if u32_at(blob, zip64_end)? != ZIP64_END_OF_DIRECTORY {
            return None;
        }
        count = u64_at(blob, zip64_end + 32)?;
        offset = u64_at(blob, zip64_end + 48)?;
    }
    let mut at = usize::try_from(offset).ok()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        if u32_at(blob, at)? != DIRECTORY_ENTRY {
            return None;
        }
        let method = u16_at(blob, at + 10)?;
        let mut compressed = u64::from(u32_at(blob, at + 20)?);
        let mut uncompressed = u64::from(u32_at(blob, at + 24)?);
        let name_len = usize::from(u16_at(blob, at + 28)?);
        let extra_len = usize::from(u16_at(blob, at + 30)?);
        let comment_len = usize::from(u16_at(blob, at + 32)?);
        let mut local_header = u64::from(u32_at(blob, at + 42)?);
        let name = blob.get(at + 46..at + 46 + name_len)?.to_vec();
        let extra = blob.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
        read_zip64_extra(
            extra,
            &mut [&mut uncompressed, &mut compressed, &mut local_header],
        );
        entries.push(Entry {
            name,
            method,
            compressed,
            uncompressed,
            local_header,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(entries)
}

/// Fills the sizes and offset that the directory entry left at their maximum from its
/// zip64 extra field (id 1), in the order the format gives them.
fn read_zip64_extra(extra: &[u8], fields: &mut [&mut u64]) {
    let mut at = 0;
    while let (Some(id), Some(len)) = (u16_at(extra, at), u16_at(extra, at + 2)) {
        let body = at + 4;
        if id == 1 {
            let mut next = body;
            for field in fields.iter_mut() {
                if **field == 0xffff_ffff {
                    if let Some(value) = u64_at(extra, next) {
                        **field = value;
                    }
                    next += 8;
                }
            }
            return;
        }
        at = body + usize::from(len);
    }
}

/// The bytes of a stored or deflated entry, or None when they cannot be had.
fn entry_data(blob: &[u8], entry: &Entry) -> Option<Vec<u8>> {
    let header = usize::try_from(entry.local_header).ok()?;
    if u32_at(blob, header)? != LOCAL_HEADER {
        return None;
    }
    let name_len = usize::from(u16_at(blob, header + 26)?);
    let extra_len = usize::from(u16_at(blob, header + 28)?);
    let start = header + 30 + name_len + extra_len;
    let end = start.checked_add(usize::try_from(entry.compressed).ok()?)?;
    let data = blob.get(start..end)?;
    match entry.method {
        0 => Some(data.to_vec()),
        // A pickle inflates to what its directory entry says, and no further than
        // MAX_INFLATED (a bomb stops there and is left to libtorch).
        8 => {
            let limit = usize::try_from(entry.uncompressed).ok()?.min(MAX_INFLATED);
            decompress_to_vec_with_limit(data, limit).ok()
        }
        _ => None,
    }
}
