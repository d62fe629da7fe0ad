//! The simulated board's object model (`rr_model`, `M409`): the parts web clients
//! read, and the query rules of RepRapFirmware's `key` and `flags`.
//!
//! - `key`: a dotted path (`move.axes`), an element (`move.axes[0]`), every element's
//!   field (`move.axes[].homed`), or `#` before a path for an array's length
//!   (`#move.axes`). A path that names nothing gives `null`; a malformed one is a
//!   [`KeyError`].
//! - `flags`: `f` only the values that change often during a job; `v` also the rarely
//!   wanted ones; `n` keep `null` fields (otherwise left out); `d<N>` report at most N
//!   levels, deeper objects as `{}` and arrays as `[]` (with an empty key and no `f`
//!   the depth is 1, as in RepRapFirmware); `o` (obsolete fields) and `a<N>` are
//!   accepted and change nothing here. Spaces and commas between flags are allowed;
//!   other letters are ignored.

use std::format;
use std::string::{String, ToString};
use std::time::Instant;
use std::vec::Vec;

use serde_json::{json, Map, Value};

use super::gcode::{Machine, FIRMWARE_VERSION};

/// What the model shows about the board itself.
#[derive(Clone, Debug)]
pub struct BoardInfo<'a> {
    /// Host name.
    pub host_name: &'a str,
    /// The network it joined.
    pub ssid: &'a str,
    /// Its address.
    pub ip: [u8; 4],
    /// Seconds since start.
    pub up_secs: f64,
    /// Card size and bytes used.
    pub card: (usize, usize),
}

/// The whole model, every field (`v` and `n`).
pub fn full(m: &Machine, b: &BoardInfo<'_>, now: Instant) -> Value {
    let ip = format!("{}.{}.{}.{}", b.ip[0], b.ip[1], b.ip[2], b.ip[3]);
    let job_file = m.job.as_ref().map_or_else(
        || {
            json!({"fileName": null, "size": 0, "height": 0, "layerHeight": 0, "numLayers": 0,
                  "filament": [], "generatedBy": null, "printTime": null, "simulatedTime": null,
                  "lastModified": null})
        },
        |j| {
            json!({"fileName": j.file, "size": j.size, "height": j.info.height,
                   "firstLayerHeight": j.info.first_layer_height, "layerHeight": j.info.layer_height,
                   "numLayers": j.info.num_layers, "filament": [j.info.filament],
                   "generatedBy": j.info.generated_by, "printTime": null, "simulatedTime": null,
                   "lastModified": null})
        },
    );
    let job = m.job.as_ref();
    let axes: Vec<Value> = ['X', 'Y', 'Z']
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"letter": l.to_string(), "userPosition": m.position[i], "machinePosition": m.position[i],
                   "homed": m.homed[i], "min": 0, "max": if i == 2 { 200 } else { 230 }, "visible": true,
                   "drivers": [i.to_string()]})
        })
        .collect();
    let reading = |i: usize| (m.current(i, now) * 10.0).round() / 10.0;
    // Heater i reads sensor i; RRF reports a heater's temperature under both
    // `heat.heaters[].current` and its sensor's `lastReading` (which DWC shows).
    let analog: Vec<Value> = (0..m.heaters.len())
        .map(|i| json!({"name": "", "type": "thermistor", "state": "ok", "lastReading": reading(i)}))
        .collect();
    let heaters: Vec<Value> = (0..m.heaters.len())
        .map(|i| {
            let h = &m.heaters[i];
            json!({"current": reading(i), "active": h.active,
                   "standby": h.standby, "state": if h.on { "active" } else { "off" }, "sensor": i,
                   "max": if i == 0 { 120 } else { 285 }, "min": -273.1,
                   "model": {"heatingRate": 2.4, "coolingRate": 0.56, "deadTime": 5.5}})
        })
        .collect();
    json!({
        "boards": [{"firmwareName": "RepRapFirmware", "firmwareVersion": FIRMWARE_VERSION,
                    "firmwareFileName": "Duet2CombinedFirmware.bin", "firmwareDate": "2024-01-01",
                    "name": "Duet 2 WiFi (simulated)", "shortName": "2WiFi",
                    "uniqueId": "08DGM-9T6BU-FG3SJ-6J9F8-3S46R-SIMUL",
                    "mcuTemp": {"current": 31.4, "min": 28.1, "max": 31.9},
                    "vIn": {"current": 24.2, "min": 24.1, "max": 24.3}}],
        "directories": {"filaments": "0:/filaments/", "firmware": "0:/firmware/", "gCodes": "0:/gcodes/",
                        "macros": "0:/macros/", "menu": "0:/menu/", "system": "0:/sys/", "web": "0:/www/"},
        "fans": [],
        "global": {},
        "heat": {"bedHeaters": [0, -1, -1, -1], "chamberHeaters": [-1, -1], "heaters": heaters},
        "inputs": [],
        "ledStrips": [],
        "limits": {},
        "job": {
            "file": job_file,
            "filePosition": job.map_or(0, |j| j.position(now, m.print_rate)),
            "duration": job.map(|j| j.duration(now).as_secs()),
            "lastFileName": m.last_file,
            "layer": job.map(|_| 1),
            "timesLeft": {"file": null, "filament": null, "slicer": null},
        },
        "move": {"axes": axes, "currentMove": {"requestedSpeed": 0, "topSpeed": 0}},
        "network": {"hostname": b.host_name, "name": b.host_name, "interfaces": [
            {"type": "wifi", "actualIP": ip, "state": "active", "ssid": b.ssid,
             "mac": "a0:20:a6:00:00:01", "subnet": "255.255.255.0", "gateway": "0.0.0.0"}
        ]},
        "seqs": {"boards": 0, "directories": m.seqs.directories, "fans": 0, "global": 0,
                 "heat": m.seqs.heat, "inputs": 0, "job": m.seqs.job, "ledStrips": 0,
                 "move": m.seqs.moves, "network": 0, "reply": m.reply_seq(), "sensors": 0,
                 "spindles": 0, "state": m.seqs.state, "tools": m.seqs.heat,
                 "volChanges": [m.seqs.directories], "volumes": m.seqs.directories},
        "sensors": {"analog": analog, "endstops": [], "probes": []},
        "spindles": [],
        "state": {"status": m.status.name(), "upTime": b.up_secs as u64,
                  "msUpTime": ((b.up_secs.fract()) * 1000.0) as u64, "machineMode": "FFF",
                  "currentTool": m.tool, "displayMessage": m.message, "time": null},
        "tools": [{"number": 0, "name": "", "heaters": [1], "active": [m.heaters[1].active],
                   "standby": [m.heaters[1].standby], "state": if m.tool == 0 { "active" } else { "off" }}],
        "volumes": [{"path": "0:/", "mounted": true, "capacity": b.card.0,
                     "freeSpace": b.card.0.saturating_sub(b.card.1)}],
    })
}

/// Parsed `flags`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `f`.
    pub frequent: bool,
    /// `v`.
    pub verbose: bool,
    /// `n`.
    pub nulls: bool,
    /// `d<N>`.
    pub depth: Option<usize>,
}

impl Flags {
    /// Read a flags string (never fails: unknown letters are ignored, as the firmware
    /// does).
    pub fn parse(s: &str) -> Flags {
        let mut f = Flags::default();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            i += 1;
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let number = std::str::from_utf8(&b[i..i + digits])
                .ok()
                .and_then(|d| d.parse().ok());
            match c {
                b'f' => f.frequent = true,
                b'v' => f.verbose = true,
                b'n' => f.nulls = true,
                b'd' => {
                    f.depth = number;
                    i += digits;
                }
                b'a' => i += digits,
                _ => {}
            }
        }
        f
    }
}

/// A malformed `key`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyError;

/// The fields `f` keeps, by object path (array elements as `[]`); objects not listed
/// keep everything.
const LIVE: &[(&str, &[&str])] = &[
    ("", &["boards", "heat", "job", "move", "sensors", "seqs", "state"]),
    ("boards[]", &["mcuTemp", "vIn"]),
    ("heat", &["heaters"]),
    ("heat.heaters[]", &["current", "state", "active", "standby"]),
    ("job", &["duration", "filePosition", "layer", "timesLeft"]),
    ("move", &["axes", "currentMove"]),
    ("move.axes[]", &["userPosition", "machinePosition"]),
    ("sensors", &["analog"]),
    ("sensors.analog[]", &["lastReading"]),
    (
        "state",
        &["status", "upTime", "msUpTime", "currentTool", "displayMessage"],
    ),
];

/// Fields shown only with `v`, by object path.
const VERBOSE: &[(&str, &[&str])] = &[
    ("boards[]", &["uniqueId", "firmwareDate"]),
    ("heat.heaters[]", &["model"]),
    ("network.interfaces[]", &["mac", "subnet", "gateway"]),
    ("move.axes[]", &["drivers"]),
];

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Apply `f`, `v` and `n` below `path`, and cut at `depth`.
fn shape(v: Value, path: &str, flags: &Flags, depth: usize) -> Value {
    match v {
        Value::Object(map) => {
            if depth == 0 {
                return Value::Object(Map::new());
            }
            let live = LIVE.iter().find(|(p, _)| *p == path).map(|(_, k)| *k);
            let verbose = VERBOSE
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(&[][..], |(_, k)| *k);
            let mut out = Map::new();
            for (k, c) in map {
                if flags.frequent && live.is_some_and(|l| !l.contains(&k.as_str())) {
                    continue;
                }
                if !flags.verbose && verbose.contains(&k.as_str()) {
                    continue;
                }
                if !flags.nulls && c.is_null() {
                    continue;
                }
                let sub = child(path, &k);
                out.insert(k, shape(c, &sub, flags, depth - 1));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            if depth == 0 {
                return Value::Array(Vec::new());
            }
            let sub = format!("{path}[]");
            Value::Array(
                items
                    .into_iter()
                    .map(|c| shape(c, &sub, flags, depth - 1))
                    .collect(),
            )
        }
        other => other,
    }
}

/// One step of a key path.
enum Step<'a> {
    Field(&'a str),
    Index(usize),
    Each,
}

fn parse_key(key: &str) -> Result<Vec<Step<'_>>, KeyError> {
    let mut steps = Vec::new();
    if key.is_empty() {
        return Ok(steps);
    }
    for part in key.split('.') {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(KeyError);
        }
        steps.push(Step::Field(name));
        while !rest.is_empty() {
            let close = rest.find(']').ok_or(KeyError)?;
            let inner = rest.get(1..close).ok_or(KeyError)?;
            steps.push(if inner.is_empty() {
                Step::Each
            } else {
                Step::Index(inner.parse().map_err(|_| KeyError)?)
            });
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(KeyError);
            }
        }
    }
    Ok(steps)
}

fn select(v: &Value, steps: &[Step<'_>]) -> Value {
    let Some((first, rest)) = steps.split_first() else {
        return v.clone();
    };
    match first {
        Step::Field(name) => v.get(*name).map_or(Value::Null, |c| select(c, rest)),
        Step::Index(i) => v.get(*i).map_or(Value::Null, |c| select(c, rest)),
        Step::Each => match v.as_array() {
            Some(items) => Value::Array(items.iter().map(|c| select(c, rest)).collect()),
            None => Value::Null,
        },
    }
}

/// The result of a query on `model`: the value at `key`, shaped by `flags`.
pub fn query(model: &Value, key: &str, flags: &Flags) -> Result<Value, KeyError> {
    let (count, path) = match key.strip_prefix('#') {
        Some(p) => (true, p),
        None => (false, key),
    };
    let steps = parse_key(path)?;
    let value = select(model, &steps);
    if count {
        return Ok(value.as_array().map_or(Value::Null, |a| json!(a.len())));
    }
    // The path of the selected value, with element indices as `[]`.
    let mut shape_path = String::new();
    for s in &steps {
        match s {
            Step::Field(n) => shape_path = child(&shape_path, n),
            Step::Index(_) | Step::Each => shape_path.push_str("[]"),
        }
    }
    let default_depth = if key.is_empty() && !flags.frequent { 1 } else { 99 };
    let depth = flags.depth.unwrap_or(default_depth);
    if value.is_null() {
        return Ok(value);
    }
    Ok(shape(value, &shape_path, flags, depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Value {
        let b = BoardInfo {
            host_name: "duet",
            ssid: "net",
            ip: [127, 0, 0, 1],
            up_secs: 5.0,
            card: (100, 10),
        };
        full(&Machine::new(100), &b, Instant::now())
    }

    /// What Duet Web Control reads when it connects: every top-level key of its model
    /// that RRF 3.5 has is there (DWC's update fails on a `null` array, e.g.
    /// `spindles`), the heaters' temperatures are also their sensors' readings (DWC
    /// shows those), and the live poll carries the readings.
    #[test]
    fn what_dwc_reads() {
        let m = model();
        let q = |k, f| query(&m, k, &Flags::parse(f)).unwrap();
        for key in ["ledStrips", "spindles"] {
            assert!(q(key, "d99vno").is_array(), "{key}");
        }
        assert!(q("limits", "d99vno").is_object());
        let seqs = q("seqs", "");
        for key in ["ledStrips", "spindles", "tools", "volumes"] {
            assert!(seqs[key].is_u64(), "seqs.{key}");
        }
        assert_eq!(seqs["volChanges"], json!([seqs["volumes"].clone()]));
        let heaters = q("heat.heaters[].current", "");
        assert_eq!(q("sensors.analog[].lastReading", ""), heaters);
        assert_eq!(heaters.as_array().map(Vec::len), Some(2));
        let live = q("", "d99fno");
        assert_eq!(
            live["sensors"],
            json!({"analog": [{"lastReading": heaters[0]}, {"lastReading": heaters[1]}]})
        );
    }

    #[test]
    fn keys_and_flags() {
        let m = model();
        let q = |k, f| query(&m, k, &Flags::parse(f)).unwrap();
        assert_eq!(q("state.status", ""), "idle");
        assert_eq!(q("#move.axes", ""), 3);
        assert_eq!(q("move.axes[1].letter", ""), "Y");
        assert_eq!(q("move.axes[].letter", ""), json!(["X", "Y", "Z"]));
        assert_eq!(q("no.such", ""), Value::Null);
        assert!(query(&m, "move.axes[x]", &Flags::default()).is_err());
        assert!(query(&m, "a..b", &Flags::default()).is_err());
        // Empty key: depth 1 by default; d99 everything.
        assert_eq!(q("", "")["state"], json!({}));
        assert_eq!(q("", "d99")["state"]["status"], "idle");
        assert_eq!(q("", "d2")["move"]["axes"], json!([]));
        // f: live values only; v: rare ones; n: nulls.
        let live = q("", "d99f");
        assert!(live.get("network").is_none() && live["job"].get("file").is_none());
        assert!(live["heat"]["heaters"][1]["current"].is_f64());
        assert!(q("boards[0]", "").get("uniqueId").is_none());
        assert!(q("boards[0]", "v").get("uniqueId").is_some());
        assert!(q("job", "").get("lastFileName").is_none());
        assert!(q("job", "n")["lastFileName"].is_null() && q("job", "n").get("lastFileName").is_some());
        assert_eq!(
            Flags::parse("d99,f n"),
            Flags {
                frequent: true,
                nulls: true,
                depth: Some(99),
                verbose: false
            }
        );
    }
}
