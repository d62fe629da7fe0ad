//! The API: the routes, and what the device accepts from a browser.
//!
//! # What the device accepts from a browser
//!
//! Reading is open to anyone on the network: `GET`/`HEAD` of the page and of
//! `/api/state` change nothing. Changing state — `POST /api/setpoint` and
//! `POST /api/reset-cutoff`, the only routes that do — is accepted only from the
//! page this device serves, and only when:
//!
//! 1. the request has exactly one `Content-Type`, and its media type is
//!    `application/json` (parameters such as `charset` allowed, any case) — else 415.
//!    An HTML form cannot send that type, and a cross-origin `fetch` can send it only
//!    after a CORS preflight, which this server never grants (it sends no
//!    `Access-Control-*` header and answers `OPTIONS` with 405);
//! 2. it has no `Origin`, or exactly one, equal to `http://` + its one non-empty
//!    `Host` — else 403 (also `Origin: null`, or an `Origin` without a `Host`);
//! 3. its body is what the route takes: `{"setpoint_c": N}`, `N` a whole number of °C
//!    in [`SETPOINT_MIN_C`]`..=`[`SETPOINT_MAX_C`] written as RFC 8259 allows
//!    (no `0300`, no `+300`), nothing else in the object; or an empty body or `{}`
//!    for the reset — else 400.
//!
//! Checked in that order, before the body is looked at; a refused request posts
//! nothing to the control loop. So a page on another origin the user merely visits
//! cannot change the setpoint or reset the overheat latch. There is no
//! authentication: keep the device on a trusted network.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::framing::{header, header_count};
use super::json_number::json_numbers_valid;
use super::page::{cutoff_name, on_off, page};
use super::response::{not_allowed, reply_error, reply_json, ErrorBody, Reply};
use super::View;
use crate::control::{Command, CommandOutcome, SETPOINT_MAX_C, SETPOINT_MIN_C};
use crate::history::History;
use crate::state::{link_name, Snapshot};
use crate::temp::Temp;

/// Answer a framed request: route by path and method, the cross-site defence
/// first for the POSTs.
pub(super) fn route<const H: usize>(
    method: &str,
    target: &str,
    headers: &[httparse::Header<'_>],
    body: &[u8],
    view: &View<'_, H>,
    out: &mut [u8],
) -> Reply {
    let path = target.split('?').next().unwrap_or(target);
    let is_get = matches!(method, "GET" | "HEAD");
    match path {
        "/" | "/index.html" if is_get => page(view, out),
        "/api/state" if is_get => state(view, out),
        "/api/setpoint" | "/api/reset-cutoff" if method == "POST" => {
            if let Err((status, msg)) = same_origin_json(headers) {
                return reply_error(out, status, msg);
            }
            if path == "/api/setpoint" {
                setpoint(body, out)
            } else {
                reset_cutoff(view.snapshot, body, out)
            }
        }
        "/" | "/index.html" | "/api/state" => not_allowed(out, "GET, HEAD"),
        "/api/setpoint" | "/api/reset-cutoff" => not_allowed(out, "POST"),
        _ => reply_error(out, 404, "not found"),
    }
}

/// The cross-site defence of a state-changing request (see the [module docs](self)):
/// exactly one `Content-Type` whose media type is `application/json`, and no
/// `Origin` other than this server's own (`http://` + `Host`).
fn same_origin_json(headers: &[httparse::Header<'_>]) -> Result<(), (u16, &'static str)> {
    const NOT_JSON: (u16, &str) = (415, "Content-Type must be application/json");
    if header_count(headers, "content-type") != 1 {
        return Err(NOT_JSON);
    }
    let ct = header(headers, "content-type").unwrap_or(&[]);
    let media_type = ct.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii();
    if !media_type.eq_ignore_ascii_case(b"application/json") {
        return Err(NOT_JSON);
    }
    const FOREIGN: (u16, &str) = (403, "requests from another origin are not accepted");
    match header_count(headers, "origin") {
        0 => Ok(()),
        1 => {
            let origin = header(headers, "origin").unwrap_or(&[]).trim_ascii();
            let host = (header_count(headers, "host") == 1)
                .then(|| header(headers, "host"))
                .flatten()
                .map(<[u8]>::trim_ascii)
                .filter(|h| !h.is_empty())
                .ok_or(FOREIGN)?;
            let own = origin.len() > 7
                && origin[..7].eq_ignore_ascii_case(b"http://")
                && origin[7..].eq_ignore_ascii_case(host);
            if own {
                Ok(())
            } else {
                Err(FOREIGN)
            }
        }
        _ => Err(FOREIGN),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetpointRequest {
    #[serde(default)]
    setpoint_c: Option<f64>,
}

#[derive(Serialize)]
struct SetpointAccepted {
    ok: bool,
    setpoint_c: i32,
}

#[derive(Serialize)]
struct ResetAccepted {
    ok: bool,
    reset_requested: bool,
}

fn setpoint(body: &[u8], out: &mut [u8]) -> Reply {
    const NOT_WHOLE: &str = "setpoint_c must be a whole number (°C)";
    const EXPECTED: &str = "expected a JSON object {\"setpoint_c\": <whole number of °C>}";
    if body.iter().all(u8::is_ascii_whitespace) {
        return reply_error(out, 400, EXPECTED);
    }
    if !json_numbers_valid(body) {
        return reply_error(
            out,
            400,
            "invalid JSON number (no leading zeros or '+'; digits on both sides of '.')",
        );
    }
    // Parsed as a number, then checked to be whole, so `250.5` gets a clear message.
    let value = match serde_json_core::from_slice::<SetpointRequest>(body) {
        Ok((SetpointRequest { setpoint_c: Some(v) }, _)) => v,
        Ok((SetpointRequest { setpoint_c: None }, _)) => {
            return reply_error(out, 400, "missing field setpoint_c");
        }
        Err(serde_json_core::de::Error::InvalidNumber) => return reply_error(out, 400, NOT_WHOLE),
        Err(serde_json_core::de::Error::CustomError) => {
            return reply_error(out, 400, "unknown or repeated field; expected only setpoint_c");
        }
        Err(_) => return reply_error(out, 400, EXPECTED),
    };
    // `as` saturates; a whole number in range survives the round trip unchanged.
    let whole = value as i32;
    if f64::from(whole) != value && value.is_finite() && value.abs() < 1e9 {
        return reply_error(out, 400, NOT_WHOLE);
    }
    if f64::from(whole) != value || !(SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&whole) {
        let body = ErrorBody {
            error: "setpoint_c out of range",
            min_c: Some(SETPOINT_MIN_C),
            max_c: Some(SETPOINT_MAX_C),
        };
        return reply_json(out, 400, &body, None);
    }
    let value = whole;
    let accepted = SetpointAccepted {
        ok: true,
        setpoint_c: value,
    };
    reply_json(out, 202, &accepted, Some(Command::SetSetpoint(value)))
}

/// The body of a reset: nothing, or an empty JSON object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

fn reset_cutoff(snapshot: &Snapshot, body: &[u8], out: &mut [u8]) -> Reply {
    if !body.iter().all(u8::is_ascii_whitespace) && serde_json_core::from_slice::<NoFields>(body).is_err() {
        return reply_error(out, 400, "expected an empty body or {}");
    }
    if !snapshot.overheat_latched {
        return reply_error(out, 409, "the overheat cutoff is not latched");
    }
    let body = ResetAccepted {
        ok: true,
        reset_requested: true,
    };
    reply_json(out, 202, &body, Some(Command::ResetCutoff))
}

struct HistoryJson<'a, const H: usize>(&'a History<H>);

impl<const H: usize> Serialize for HistoryJson<'_, H> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for sample in self.0.iter() {
            seq.serialize_element(&sample.temp().map(Temp::as_f32))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct StateJson<'a, const H: usize> {
    temp_c: Option<f32>,
    setpoint_c: i32,
    element: &'static str,
    cutoff_relay: &'static str,
    overheat_latched: bool,
    mode: &'static str,
    bank_reason: Option<&'static str>,
    bank_remaining_s: Option<u64>,
    fault: Option<&'static str>,
    link: &'static str,
    uptime_s: u64,
    cycles: u32,
    trips: u32,
    last_command: Option<&'static str>,
    setpoint_min_c: i32,
    setpoint_max_c: i32,
    history_period_s: f32,
    history_c: HistoryJson<'a, H>,
}

fn state<const H: usize>(view: &View<'_, H>, out: &mut [u8]) -> Reply {
    let s = view.snapshot;
    let body = StateJson {
        temp_c: s.temperature.map(Temp::as_f32),
        setpoint_c: s.setpoint.whole_c(),
        element: on_off(s.outputs.element_on),
        cutoff_relay: cutoff_name(s),
        overheat_latched: s.overheat_latched,
        mode: s.mode.name(),
        bank_reason: s.bank_reason.map(|r| r.name()),
        bank_remaining_s: s.bank_ends_ms.map(|end| end.saturating_sub(s.uptime_ms) / 1000),
        fault: s.fault.map(|f| f.name()),
        link: link_name(s.link),
        uptime_s: s.uptime_ms / 1000,
        cycles: s.cycles,
        trips: s.trips,
        last_command: s.last_command.map(CommandOutcome::name),
        setpoint_min_c: SETPOINT_MIN_C,
        setpoint_max_c: SETPOINT_MAX_C,
        history_period_s: view.history.period_ms() as f32 / 1000.0,
        history_c: HistoryJson(view.history),
    };
    reply_json(out, 200, &body, None)
}
