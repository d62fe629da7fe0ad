//! The simulated board's SD card: normalised file names on volume `0:`, and the
//! space its files use (the board gives the card a capacity).
//!
//! Names are RepRapFirmware style, `0:/dir/file`. [`normalise`] resolves `.` and
//! `..`, folds repeated slashes and refuses a name that is empty, names a directory,
//! leaves the volume (`0:/../x`), names another volume, or carries a byte a FAT
//! name cannot (control characters, `\ : * ? " < > |`). Every name the HTTP API
//! takes goes through it, so what is stored, listed and served is always inside the
//! card.

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

/// Why a file name was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Nothing after the volume.
    Empty,
    /// `..` above the volume's root.
    LeavesVolume,
    /// A volume other than `0:`.
    NoSuchVolume,
    /// A byte a FAT name cannot carry.
    BadCharacter,
    /// Longer than [`MAX_NAME`].
    TooLong,
}

impl NameError {
    /// The message for the client.
    pub const fn message(self) -> &'static str {
        match self {
            NameError::Empty => "empty file name",
            NameError::LeavesVolume => "file name leaves the volume",
            NameError::NoSuchVolume => "no such volume (only 0:)",
            NameError::BadCharacter => "file name has a character a FAT name cannot carry",
            NameError::TooLong => "file name too long",
        }
    }
}

/// Longest normalised name.
pub const MAX_NAME: usize = 255;

/// `name` as `0:/a/b`, or `0:` itself for the root when `allow_root` (a directory to
/// list). Without a volume the name is taken relative to `0:/`.
pub fn normalise(name: &str, allow_root: bool) -> Result<String, NameError> {
    let rest = match name.split_once(':') {
        Some((volume, rest)) if !volume.is_empty() && volume.bytes().all(|b| b.is_ascii_digit()) => {
            if volume.parse::<u32>() != Ok(0) {
                return Err(NameError::NoSuchVolume);
            }
            rest
        }
        Some(_) => return Err(NameError::BadCharacter),
        None => name,
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(NameError::LeavesVolume)?;
            }
            p => {
                let bad = p
                    .chars()
                    .any(|c| c.is_control() || matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'));
                if bad {
                    return Err(NameError::BadCharacter);
                }
                parts.push(p);
            }
        }
    }
    if parts.is_empty() && !allow_root {
        return Err(NameError::Empty);
    }
    let mut out = String::from("0:");
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    Ok(out)
}

/// Bytes the files on the card use, not counting `except` (a file about to be
/// replaced).
pub fn used(files: &BTreeMap<String, Vec<u8>>, except: Option<&str>) -> usize {
    files
        .iter()
        .filter(|(n, _)| Some(n.as_str()) != except)
        .map(|(_, c)| c.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_inside_the_volume() {
        for (name, want) in [
            ("0:/gcodes/cube.gcode", "0:/gcodes/cube.gcode"),
            ("0://gcodes//./cube.gcode", "0:/gcodes/cube.gcode"),
            ("0:/gcodes/../sys/config.g", "0:/sys/config.g"),
            ("/gcodes/a.g", "0:/gcodes/a.g"),
            ("gcodes/a.g", "0:/gcodes/a.g"),
            ("0:/a b.gcode", "0:/a b.gcode"),
        ] {
            assert_eq!(normalise(name, false).as_deref(), Ok(want), "{name}");
        }
        for (name, err) in [
            ("0:/../../tmp/pwn", NameError::LeavesVolume),
            ("0:/gcodes/../../x", NameError::LeavesVolume),
            ("..", NameError::LeavesVolume),
            ("", NameError::Empty),
            ("0:", NameError::Empty),
            ("0:/", NameError::Empty),
            ("0:/gcodes/..", NameError::Empty),
            ("1:/x", NameError::NoSuchVolume),
            ("C:/x", NameError::BadCharacter),
            ("0:/a\\b", NameError::BadCharacter),
            ("0:/a\u{1b}[2J", NameError::BadCharacter),
            ("0:/a:b", NameError::BadCharacter),
        ] {
            assert_eq!(normalise(name, false), Err(err), "{name:?}");
        }
        assert_eq!(normalise("0:/", true).as_deref(), Ok("0:"));
        assert_eq!(normalise(&"a/".repeat(200), false), Err(NameError::TooLong));
    }
}
