//! One line of G-code as the simulated board reads it.

use std::format;
use std::string::String;

/// One parsed code: its letter, number and parameters.
///
/// Hand-written: RepRapFirmware's G-code has quoted strings (`M32 "my file.g"`,
/// `M117 "text"`) and unquoted trailing names (`M23 file.g`) that the general G-code
/// parsing crates do not read; this reads the subset the commands above take.
#[derive(Debug)]
pub(super) struct Code<'a> {
    pub(super) letter: char,
    pub(super) number: u32,
    /// What follows the command word.
    pub(super) rest: &'a str,
}

impl<'a> Code<'a> {
    pub(super) fn parse(line: &'a str) -> Option<Self> {
        // A comment runs from `;` outside quotes to the end of the line.
        let mut quoted = false;
        let mut end = line.len();
        for (i, c) in line.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ';' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let line = line[..end].trim();
        // A line number (`N12`) is skipped.
        let line = match line.strip_prefix(['N', 'n']) {
            Some(r) => r.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start(),
            None => line,
        };
        let mut chars = line.chars();
        let letter = chars.next()?.to_ascii_uppercase();
        if !matches!(letter, 'G' | 'M' | 'T') {
            return None;
        }
        let digits: String = chars
            .as_str()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let number = digits.parse().ok()?;
        let rest = chars.as_str()[digits.len()..].trim();
        Some(Code { letter, number, rest })
    }

    /// The numeric parameter `letter`.
    pub(super) fn num(&self, letter: char) -> Option<f64> {
        self.rest
            .split_whitespace()
            .find(|w| w.len() > 1 && w.starts_with(letter))
            .and_then(|w| w[1..].parse().ok())
            .filter(|v: &f64| v.is_finite())
    }

    /// The quoted string parameter `letter` (`P"0:/gcodes"`).
    pub(super) fn string(&self, letter: char) -> Option<&'a str> {
        let start = self.rest.find(&format!("{letter}\""))? + 2;
        let len = self.rest[start..].find('"')?;
        Some(&self.rest[start..start + len])
    }

    /// The first quoted string, else everything after the command word.
    pub(super) fn string_or_rest(&self) -> &'a str {
        match self.rest.find('"') {
            Some(i) => {
                let s = &self.rest[i + 1..];
                &s[..s.find('"').unwrap_or(s.len())]
            }
            None => self.rest,
        }
    }
}
