//! The simulated machine behind `rr_gcode`: the HTTP G-code input buffer, the
//! reply log behind `rr_reply`, a simulated print and the few commands a web client
//! sends.
//!
//! Codes arrive with `rr_gcode` into a bounded buffer ([`BUFFER`] bytes, reported as
//! `buff`) and are executed by the board's spin, one per pass. Every executed code
//! adds one entry to the reply log (empty if the code had nothing to say), so
//! `seqs.reply` moves and a client waiting for its code's reply sees it finish.
//!
//! Commands: `G0`/`G1` (moves set the position), `G4`, `G10 P S R`, `G21`, `G28`,
//! `G90`/`G91`, `G92`, `M0`/`M1` (cancel a print), `M17`/`M18`/`M84`, `M20` (`S0`
//! text, `S2` JSON; `P` the directory), `M23`/`M24`/`M25`/`M32` (select, start or
//! resume, pause, select and start), `M82`/`M83`, `M104`/`M140` (`S` set-point),
//! `M105`, `M106`/`M107`, `M114`, `M115`, `M117`, `M118`, `M122` (diagnostics with
//! the WiFi module's report), `M400`, `T<n>`. Anything else: `Error: Unknown G/M/T code`
//! (or `Error: Bad command` for a line that is no code).
//!
//! The print advances `print_rate` bytes of the file per second of processing;
//! paused, it does not move. When the file is done the job ends (`idle`).

use std::collections::VecDeque;
use std::format;
use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::codes::Code;
use super::files::{self, Dirs, Files, GcodeInfo};

/// Bytes the HTTP G-code input buffer holds (RepRapFirmware's is of this order).
pub const BUFFER: usize = 512;
/// Reply-log entries kept; older ones are dropped.
pub const REPLY_LOG: usize = 64;

/// The machine's state (`state.status`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Nothing running.
    Idle,
    /// Printing a file.
    Processing,
    /// A print paused.
    Paused,
}

impl Status {
    /// The object model's name.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Processing => "processing",
            Status::Paused => "paused",
        }
    }
}

/// A print in progress.
#[derive(Clone, Debug)]
pub struct Job {
    /// The file (`0:/gcodes/…`).
    pub file: String,
    /// Its size.
    pub size: usize,
    /// What its moves and comments say.
    pub info: GcodeInfo,
    /// Processing time before the last resume.
    pub ran: Duration,
    /// Since when it is processing (`None`: paused).
    pub running_since: Option<Instant>,
}

impl Job {
    /// Processing time so far (what `job.duration` shows).
    pub fn duration(&self, now: Instant) -> Duration {
        self.ran
            + self
                .running_since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// Bytes of the file done at `rate` bytes/s.
    pub fn position(&self, now: Instant, rate: u32) -> usize {
        let done = self.duration(now).as_secs_f64() * f64::from(rate);
        (done as usize).min(self.size)
    }
}

/// One heater.
#[derive(Copy, Clone, Debug, Default)]
pub struct Heater {
    /// Active set-point.
    pub active: f64,
    /// Standby set-point.
    pub standby: f64,
    /// Switched on (`active`), else `off`.
    pub on: bool,
}

/// Sequence numbers of the object model's parts (`seqs`).
#[derive(Copy, Clone, Debug, Default)]
pub struct Seqs {
    /// `state` changed.
    pub state: u64,
    /// `job` changed (start, pause, end).
    pub job: u64,
    /// `heat` changed (set-points).
    pub heat: u64,
    /// `move` changed (positions, homing).
    pub moves: u64,
    /// Files or directories changed.
    pub directories: u64,
}

/// The machine.
#[derive(Debug)]
pub struct Machine {
    queue: VecDeque<String>,
    queued: usize,
    replies: VecDeque<(u64, String)>,
    reply_seq: u64,
    /// `state.status`.
    pub status: Status,
    /// The print, if any.
    pub job: Option<Job>,
    /// The file selected with `M23` (not started).
    pub selected: Option<String>,
    /// The last file printed.
    pub last_file: Option<String>,
    /// Heaters: 0 the bed, 1 the hot end.
    pub heaters: [Heater; 2],
    /// X, Y, Z.
    pub position: [f64; 3],
    /// Whether each axis is homed.
    pub homed: [bool; 3],
    /// `M117`'s message.
    pub message: String,
    /// The selected tool (-1: none).
    pub tool: i32,
    /// Bytes of a file printed per second.
    pub print_rate: u32,
    /// Sequence numbers.
    pub seqs: Seqs,
    /// When the machine started (the heaters' wobble runs from here).
    epoch: Instant,
}

/// Why `rr_gcode` could not queue a code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// Longer than the whole buffer: it can never be taken.
    TooLong,
    /// Not enough room now; try again when `buff` has grown.
    Full,
}

impl Machine {
    /// An idle machine printing at `print_rate` bytes/s.
    pub fn new(print_rate: u32) -> Self {
        Machine {
            queue: VecDeque::new(),
            queued: 0,
            replies: VecDeque::new(),
            reply_seq: 0,
            status: Status::Idle,
            job: None,
            selected: None,
            last_file: None,
            // The hot end starts at 205 °C, so a client has a live temperature to show.
            heaters: [
                Heater::default(),
                Heater {
                    active: 205.0,
                    standby: 0.0,
                    on: true,
                },
            ],
            position: [0.0; 3],
            homed: [false; 3],
            message: String::new(),
            tool: 0,
            print_rate,
            seqs: Seqs::default(),
            epoch: Instant::now(),
        }
    }

    /// Free bytes in the input buffer (`buff`).
    pub fn buffer_space(&self) -> usize {
        BUFFER - self.queued
    }

    /// Queue the lines of `codes` (all or none).
    pub fn put(&mut self, codes: &str) -> Result<(), QueueError> {
        let lines: Vec<&str> = codes
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let need: usize = lines.iter().map(|l| l.len() + 1).sum();
        if need > BUFFER {
            return Err(QueueError::TooLong);
        }
        if need > self.buffer_space() {
            return Err(QueueError::Full);
        }
        for l in lines {
            self.queued += l.len() + 1;
            self.queue.push_back(l.to_string());
        }
        Ok(())
    }

    /// The next queued code, taken out of the buffer.
    pub fn next_code(&mut self) -> Option<String> {
        let code = self.queue.pop_front()?;
        self.queued -= code.len() + 1;
        Some(code)
    }

    /// The newest reply-log number (`seqs.reply`).
    pub fn reply_seq(&self) -> u64 {
        self.reply_seq
    }

    /// Add a reply to the log.
    pub fn reply(&mut self, text: &str) {
        self.reply_seq += 1;
        let mut text = text.to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        self.replies.push_back((self.reply_seq, text));
        while self.replies.len() > REPLY_LOG {
            self.replies.pop_front();
        }
    }

    /// The replies after number `seen`, joined.
    pub fn replies_after(&self, seen: u64) -> String {
        self.replies
            .iter()
            .filter(|(n, _)| *n > seen)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    /// Advance the print; a finished file ends the job.
    pub fn tick(&mut self, now: Instant) {
        let done = self
            .job
            .as_ref()
            .is_some_and(|j| j.running_since.is_some() && j.position(now, self.print_rate) >= j.size);
        if done {
            let text = self.end_job(now, "Finished");
            self.reply(&text);
        }
    }

    fn end_job(&mut self, now: Instant, verb: &str) -> String {
        let Some(job) = self.job.take() else {
            return String::new();
        };
        let secs = job.duration(now).as_secs();
        self.last_file = Some(job.file.clone());
        self.status = Status::Idle;
        self.seqs.job += 1;
        self.seqs.state += 1;
        format!(
            "{verb} printing file {}, print time was {}h {}m",
            job.file,
            secs / 3600,
            (secs / 60) % 60
        )
    }

    fn start(&mut self, file: String, files: &Files, now: Instant) -> Result<String, String> {
        let content = files
            .get(&file)
            .ok_or_else(|| format!("Could not find file {file}"))?;
        if self.job.is_some() {
            return Err("Cannot start a new print while a file is being printed".into());
        }
        self.job = Some(Job {
            size: content.len(),
            info: files::gcode_info(content),
            file,
            ran: Duration::ZERO,
            running_since: Some(now),
        });
        self.selected = None;
        self.status = Status::Processing;
        self.seqs.job += 1;
        self.seqs.state += 1;
        Ok(String::new())
    }

    /// Execute one code; the reply goes to the log. `module_report` is the WiFi
    /// module's diagnostics (for `M122`) if the caller could get it.
    pub fn execute(&mut self, line: &str, card: (&Files, &Dirs), module_report: Option<&str>, now: Instant) {
        let text = match self.run(line, card, module_report, now) {
            Ok(t) => t,
            Err(e) => format!("Error: {e}"),
        };
        self.reply(&text);
    }

    fn run(
        &mut self,
        line: &str,
        (files, dirs): (&Files, &Dirs),
        module_report: Option<&str>,
        now: Instant,
    ) -> Result<String, String> {
        let code = Code::parse(line).ok_or_else(|| format!("Bad command: {}", line.trim()))?;
        let id = format!("{}{}", code.letter, code.number);
        let ok = Ok(String::new());
        match (code.letter, code.number) {
            ('G', 0 | 1) => {
                for (i, axis) in ['X', 'Y', 'Z'].into_iter().enumerate() {
                    if let Some(v) = code.num(axis) {
                        self.position[i] = v;
                    }
                }
                self.seqs.moves += 1;
                ok
            }
            ('G', 4 | 21 | 90 | 91) | ('M', 17 | 18 | 82 | 83 | 84 | 106 | 107 | 400) => ok,
            ('G', 10) => {
                if let Some(s) = code.num('S') {
                    self.set_heater(1, s);
                }
                if let Some(r) = code.num('R') {
                    self.heaters[1].standby = r;
                }
                ok
            }
            ('G', 28) => {
                self.position = [0.0; 3];
                self.homed = [true; 3];
                self.seqs.moves += 1;
                ok
            }
            ('G', 92) => {
                for (i, axis) in ['X', 'Y', 'Z'].into_iter().enumerate() {
                    if let Some(v) = code.num(axis) {
                        self.position[i] = v;
                    }
                }
                ok
            }
            ('M', 0 | 1) => Ok(if self.job.is_some() {
                self.end_job(now, "Cancelled")
            } else {
                String::new()
            }),
            ('M', 20) => {
                let dir = code.string('P').unwrap_or("0:/gcodes");
                let dir = super::card::normalise(dir, true).map_err(|e| format!("{id}: {}", e.message()))?;
                let entries = files::list(files, dirs, &dir)
                    .ok_or_else(|| format!("{id}: directory {dir} not found"))?;
                if code.num('S') == Some(2.0) {
                    let names: Vec<String> = entries
                        .iter()
                        .map(|e| {
                            if e.is_dir {
                                format!("*{}", e.name)
                            } else {
                                e.name.clone()
                            }
                        })
                        .collect();
                    let v = serde_json::json!({"dir": format!("{dir}/"), "first": 0, "files": names, "next": 0, "err": 0});
                    Ok(v.to_string())
                } else {
                    let mut t = String::from("Begin file list\n");
                    for e in &entries {
                        t.push_str(&e.name);
                        t.push('\n');
                    }
                    t.push_str("End file list");
                    Ok(t)
                }
            }
            ('M', 23) => {
                let file = gcode_file(code.string_or_rest()).map_err(|e| format!("{id}: {e}"))?;
                if !files.contains_key(&file) {
                    return Err(format!("{id}: Could not find file {file}"));
                }
                let text = format!("File {file} selected for printing");
                self.selected = Some(file);
                Ok(text)
            }
            ('M', 24) => match (self.status, self.selected.take()) {
                (Status::Paused, _) => {
                    if let Some(j) = self.job.as_mut() {
                        j.running_since = Some(now);
                    }
                    self.status = Status::Processing;
                    self.seqs.state += 1;
                    ok
                }
                (Status::Idle, Some(file)) => self.start(file, files, now).map_err(|e| format!("{id}: {e}")),
                (Status::Processing, _) => ok,
                (Status::Idle, None) => Err(format!("{id}: Cannot print, because no file is selected!")),
            },
            ('M', 25) => {
                if self.status != Status::Processing {
                    return Err(format!(
                        "{id}: Cannot pause print, because no file is being printed!"
                    ));
                }
                if let Some(j) = self.job.as_mut() {
                    j.ran = j.duration(now);
                    j.running_since = None;
                }
                self.status = Status::Paused;
                self.seqs.state += 1;
                self.seqs.job += 1;
                ok
            }
            ('M', 32) => {
                let file = gcode_file(code.string_or_rest()).map_err(|e| format!("{id}: {e}"))?;
                self.start(file, files, now).map_err(|e| format!("{id}: {e}"))
            }
            ('M', 104 | 140) => {
                let s = code
                    .num('S')
                    .ok_or_else(|| format!("{id}: missing S parameter"))?;
                self.set_heater(if code.number == 140 { 0 } else { 1 }, s);
                ok
            }
            ('M', 105) => Ok(format!(
                "T:{:.1} /{:.1} B:{:.1} /{:.1}",
                self.current(1, now),
                self.heaters[1].active,
                self.current(0, now),
                self.heaters[0].active
            )),
            ('M', 114) => {
                let [x, y, z] = self.position;
                Ok(format!("X:{x:.3} Y:{y:.3} Z:{z:.3} E:0.000 Count 0 0 0 Machine {x:.3} {y:.3} {z:.3} Bed comp 0.000"))
            }
            ('M', 115) => Ok(format!(
                "FIRMWARE_NAME: RepRapFirmware for Duet 2 WiFi/Ethernet FIRMWARE_VERSION: {FIRMWARE_VERSION} \
                 ELECTRONICS: Duet WiFi 1.02 or later (simulated) FIRMWARE_DATE: 2024-01-01 00:00:00"
            )),
            ('M', 117) => {
                self.message = code.string_or_rest().to_string();
                self.seqs.state += 1;
                ok
            }
            ('M', 118) => Ok(code.string('S').unwrap_or("").to_string()),
            ('M', 122) => Ok(super::m122::report(self, now, module_report)),
            ('T', n) => {
                self.tool = n as i32;
                self.seqs.state += 1;
                ok
            }
            ('G' | 'M', _) => Err(format!("Unknown {} code: {id}", code.letter)),
            _ => Err(format!("Bad command: {}", line.trim())),
        }
    }

    fn set_heater(&mut self, i: usize, s: f64) {
        self.heaters[i].active = s;
        self.heaters[i].on = s > 0.0;
        self.seqs.heat += 1;
    }

    /// The simulated temperature of heater `i`: its set-point when on, room
    /// temperature when off, with a wobble of at most ±0.3 °C.
    pub fn current(&self, i: usize, now: Instant) -> f64 {
        let wobble = (now.saturating_duration_since(self.epoch).as_secs_f64() * 0.7).sin() * 0.3;
        let h = &self.heaters[i];
        if h.on {
            h.active + wobble
        } else {
            ROOM + wobble
        }
    }
}

/// The firmware version the simulated board reports.
pub const FIRMWARE_VERSION: &str = "3.5.0";
/// Room temperature of the simulated heaters when off.
pub const ROOM: f64 = 24.6;

/// A job file name: relative names are in `0:/gcodes/`.
fn gcode_file(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("no file name given".into());
    }
    let full = if name.contains(':') || name.starts_with('/') {
        name.to_string()
    } else {
        format!("0:/gcodes/{name}")
    };
    super::card::normalise(&full, false).map_err(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> (Files, Dirs) {
        let mut f = Files::new();
        f.insert("0:/gcodes/cube.gcode".into(), std::vec![b'x'; 1000]);
        (f, Dirs::new())
    }

    fn last(m: &Machine) -> String {
        m.replies_after(m.reply_seq() - 1)
    }

    #[test]
    fn print_pause_resume_cancel() {
        let (f, d) = card();
        let mut m = Machine::new(100);
        let t = Instant::now();
        m.execute("M24", (&f, &d), None, t);
        assert!(last(&m).starts_with("Error: M24: Cannot print"), "{}", last(&m));
        m.execute("M32 \"cube.gcode\" ; go", (&f, &d), None, t);
        assert_eq!((m.status, last(&m).as_str()), (Status::Processing, ""));
        let t1 = t + Duration::from_secs(2);
        assert_eq!(m.job.as_ref().unwrap().position(t1, 100), 200);
        m.execute("M25", (&f, &d), None, t1);
        assert_eq!(m.status, Status::Paused);
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(
            m.job.as_ref().unwrap().position(t2, 100),
            200,
            "paused: no progress"
        );
        m.execute("M24", (&f, &d), None, t2);
        assert_eq!(m.status, Status::Processing);
        m.execute("M0", (&f, &d), None, t2);
        assert_eq!(m.status, Status::Idle);
        assert!(last(&m).starts_with("Cancelled printing file 0:/gcodes/cube.gcode"));
        // M23 + M24, run to the end.
        m.execute("M23 cube.gcode", (&f, &d), None, t2);
        m.execute("M24", (&f, &d), None, t2);
        m.tick(t2 + Duration::from_secs(11));
        assert_eq!(m.status, Status::Idle);
        assert_eq!(m.last_file.as_deref(), Some("0:/gcodes/cube.gcode"));
    }

    #[test]
    fn errors_buffer_and_replies() {
        let (f, d) = card();
        let mut m = Machine::new(100);
        let t = Instant::now();
        m.execute("M9999", (&f, &d), None, t);
        assert_eq!(last(&m), "Error: Unknown M code: M9999\n");
        m.execute("hello", (&f, &d), None, t);
        assert_eq!(last(&m), "Error: Bad command: hello\n");
        m.execute("M32 \"none.g\"", (&f, &d), None, t);
        assert!(last(&m).contains("Could not find file 0:/gcodes/none.g"));
        m.execute("M32 \"../../x\"", (&f, &d), None, t);
        assert!(last(&m).starts_with("Error: M32: file name leaves the volume"));
        assert_eq!(m.put(&"G1 X1\n".repeat(200)), Err(QueueError::TooLong));
        assert_eq!(m.put("G28\nM115"), Ok(()));
        assert_eq!(m.buffer_space(), BUFFER - 9);
        assert_eq!(m.next_code().as_deref(), Some("G28"));
        m.execute("M122", (&f, &d), Some("pool report\n"), t);
        let r = last(&m);
        assert!(r.len() > 2048 && r.ends_with("pool report\n"), "{}", r.len());
        for _ in 0..REPLY_LOG + 5 {
            m.reply("x");
        }
        assert_eq!(m.replies_after(0).len(), REPLY_LOG * 2);
    }
}
