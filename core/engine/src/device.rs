//! Devices models and scripts run on: `CPU`, `GPU`, `CPU:n`, `GPU:n`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    Cpu,
    Gpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Device {
    pub kind: DeviceKind,
    /// `None` when the device was named without an index (`CPU`, `GPU`).
    pub index: Option<u32>,
}

/// The longest device index RedisAI accepts, in digits.
const MAX_INDEX_DIGITS: usize = 5;

/// The highest device index a model or script may name. Each device index has a run
/// queue with its own threads, kept for the server's life, so the number of them must be
/// bounded: `CPU:0` to `CPU:15` (all sharing the machine's cores) and `GPU:0` to `GPU:15`.
pub const MAX_INDEX: u32 = 15;

impl Device {
    pub const CPU: Device = Device {
        kind: DeviceKind::Cpu,
        index: None,
    };

    /// Parses `CPU`, `GPU`, `CPU:<n>` or `GPU:<n>` (case-insensitive, up to five digits).
    pub fn parse(text: &[u8]) -> Option<Device> {
        let (name, index) = match text.iter().position(|&b| b == b':') {
            Some(colon) => (&text[..colon], Some(&text[colon + 1..])),
            None => (text, None),
        };
        let kind = if name.eq_ignore_ascii_case(b"CPU") {
            DeviceKind::Cpu
        } else if name.eq_ignore_ascii_case(b"GPU") {
            DeviceKind::Gpu
        } else {
            return None;
        };
        let index = match index {
            None => None,
            Some(digits) => {
                if digits.is_empty()
                    || digits.len() > MAX_INDEX_DIGITS
                    || !digits.iter().all(u8::is_ascii_digit)
                {
                    return None;
                }
                Some(std::str::from_utf8(digits).ok()?.parse().ok()?)
            }
        };
        Some(Device { kind, index })
    }

    /// Refuses an index past [`MAX_INDEX`], with the error reply's text.
    pub fn check_index(self) -> Result<Device, String> {
        if self.ordinal() <= MAX_INDEX {
            Ok(self)
        } else {
            Err(format!(
                "ERR device index out of range: {self} (indices 0 to {MAX_INDEX} are accepted)"
            ))
        }
    }

    /// The index, with `GPU` meaning `GPU:0` and `CPU` meaning `CPU:0`.
    pub fn ordinal(self) -> u32 {
        self.index.unwrap_or(0)
    }

    /// The device that owns the run queue: `CPU` and `CPU:0` share one, as do `GPU`
    /// and `GPU:0`.
    pub fn queue_device(self) -> Device {
        Device {
            kind: self.kind,
            index: Some(self.ordinal()),
        }
    }
}

impl fmt::Display for Device {
    /// The device as the user named it (`CPU`, `GPU:1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            DeviceKind::Cpu => "CPU",
            DeviceKind::Gpu => "GPU",
        };
        match self.index {
            Some(index) => write!(f, "{name}:{index}"),
            None => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(Device::parse(b"cpu"), Some(Device::CPU));
        let gpu1 = Device::parse(b"GPU:1").expect("valid");
        assert_eq!((gpu1.kind, gpu1.index), (DeviceKind::Gpu, Some(1)));
        assert_eq!(gpu1.to_string(), "GPU:1");
        assert_eq!(Device::parse(b"CPU:00012").map(|d| d.ordinal()), Some(12));
        for bad in [
            &b"bad_device"[..],
            b"CPU::",
            b"CPU:1.8",
            b"CPU:123456",
            b"CPU:",
            b"TPU",
        ] {
            assert_eq!(Device::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn indices_past_the_bound_are_refused() {
        let last = Device::parse(b"CPU:15").expect("valid");
        assert_eq!(last.check_index(), Ok(last));
        let past = Device::parse(b"CPU:16").expect("valid");
        assert_eq!(
            past.check_index().unwrap_err(),
            "ERR device index out of range: CPU:16 (indices 0 to 15 are accepted)"
        );
        let far = Device::parse(b"GPU:99999").expect("valid");
        assert!(far.check_index().is_err());
    }

    #[test]
    fn default_index_shares_the_queue() {
        let gpu = Device::parse(b"GPU").expect("valid");
        assert!(gpu.check_index().is_ok());
        let gpu0 = Device::parse(b"GPU:0").expect("valid");
        assert_eq!(gpu.queue_device(), gpu0.queue_device());
        assert_ne!(gpu.to_string(), gpu0.to_string());
    }
}
