//! The page: the HTML template (`page.html`) with the live values rendered in and an
//! inline SVG chart of the history. No external resources; the response's
//! `Content-Security-Policy` forbids them.

use core::fmt::{self, Write as _};

use super::response::{reply_with, Cursor, Reply};
use super::View;
use crate::control::{CommandOutcome, SETPOINT_MAX_C, SETPOINT_MIN_C};
use crate::state::{link_name, Snapshot};
use crate::temp::Temp;

/// The HTML page template. `{{name}}` placeholders are filled in from the [`View`].
pub const PAGE_TEMPLATE: &str = include_str!("page.html");

/// `on` or `off`.
pub(super) fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The cutoff relay's contacts: `closed` (supply on) or `open`.
pub(super) fn cutoff_name(s: &Snapshot) -> &'static str {
    if s.outputs.supply_enabled {
        "closed"
    } else {
        "open"
    }
}

/// Chart geometry (matches the SVG in the template and its script).
const CHART_W: i64 = 600;
const CHART_TOP: i64 = 10;
const CHART_H: i64 = 200;

/// The chart's temperature range in whole °C: 10 °C of margin around the history and
/// the setpoint, rounded out to tens.
fn chart_range<const H: usize>(view: &View<'_, H>) -> (i64, i64) {
    let sp = view.snapshot.setpoint;
    let (lo, hi) = view.history.range().unwrap_or((sp, sp));
    let (lo, hi) = (i64::from(lo.min(sp).quarters()), i64::from(hi.max(sp).quarters()));
    let lo_c = (lo - 40).div_euclid(40) * 10;
    let hi_c = -((-(hi + 40)).div_euclid(40)) * 10;
    (lo_c, hi_c.max(lo_c + 10))
}

/// The y coordinate of `t` in tenths of a pixel, for a range in whole °C.
fn chart_y(t: Temp, (lo_c, hi_c): (i64, i64)) -> i64 {
    let (lo, hi) = (lo_c * 4, hi_c * 4);
    let q = i64::from(t.quarters()).clamp(lo, hi);
    // `hi > lo` (see `chart_range`); checked all the same: no division can panic.
    CHART_TOP * 10 + ((hi - q) * CHART_H * 10).checked_div(hi - lo).unwrap_or(0)
}

/// A coordinate in tenths of a pixel as `12.3`.
struct Tenths(i64);

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{}", a / 10, a % 10)
    }
}

fn chart_path<const H: usize>(view: &View<'_, H>, range: (i64, i64), w: &mut Cursor<'_>) {
    let n = view.history.len() as i64;
    let mut pen = false;
    for (i, sample) in view.history.iter().enumerate() {
        let Some(t) = sample.temp() else {
            pen = false;
            continue;
        };
        let x = if n <= 1 {
            CHART_W * 10
        } else {
            (i as i64 * CHART_W * 10).checked_div(n - 1).unwrap_or(0)
        };
        let cmd = if pen { 'L' } else { 'M' };
        let _ = write!(w, "{cmd}{},{}", Tenths(x), Tenths(chart_y(t, range)));
        pen = true;
    }
}

/// `GET /`: the page.
pub(super) fn page<const H: usize>(view: &View<'_, H>, out: &mut [u8]) -> Reply {
    reply_with(out, 200, "text/html; charset=utf-8", None, true, None, |w| {
        render_template(PAGE_TEMPLATE, w, |name, w| fill(view, name, w));
    })
}

/// Write `template`, replacing each `{{name}}` with what `value` writes.
fn render_template(template: &str, w: &mut Cursor<'_>, mut value: impl FnMut(&str, &mut Cursor<'_>)) {
    let mut parts = template.split("{{");
    if let Some(first) = parts.next() {
        w.put(first);
    }
    for part in parts {
        match part.split_once("}}") {
            Some((name, rest)) => {
                value(name, w);
                w.put(rest);
            }
            None => w.put(part),
        }
    }
}

fn fill<const H: usize>(view: &View<'_, H>, name: &str, w: &mut Cursor<'_>) {
    let s = view.snapshot;
    let range = chart_range(view);
    let _ = match name {
        "temp" => match s.temperature {
            Some(t) => write!(w, "{t}"),
            None => w.write_str("—"),
        },
        "setpoint" => write!(w, "{}", s.setpoint),
        "setpoint_c" => write!(w, "{}", s.setpoint.whole_c()),
        "mode" => match s.bank_reason {
            Some(r) => write!(w, "{} ({})", s.mode.name(), r.name()),
            None => w.write_str(s.mode.name()),
        },
        "fault" => w.write_str(s.fault.map_or("ok", |f| f.name())),
        "fault_class" => w.write_str(if s.fault.is_some() { "bad" } else { "ok" }),
        "element" => w.write_str(on_off(s.outputs.element_on)),
        "element_class" => w.write_str(on_off(s.outputs.element_on)),
        "cutoff" => w.write_str(match (s.overheat_latched, s.outputs.supply_enabled) {
            (true, _) => "TRIPPED (latched)",
            (false, true) => "closed (supply on)",
            (false, false) => "open (supply cut)",
        }),
        "cutoff_class" => w.write_str(match (s.overheat_latched, s.outputs.supply_enabled) {
            (true, _) => "bad",
            (false, true) => "ok",
            (false, false) => "off",
        }),
        "link" => w.write_str(link_name(s.link)),
        "uptime" => {
            let t = s.uptime_ms / 1000;
            write!(w, "{}h {:02}m {:02}s", t / 3600, t / 60 % 60, t % 60)
        }
        "cycles" => write!(w, "{}", s.cycles),
        "hi" => write!(w, "{}", range.1),
        "lo" => write!(w, "{}", range.0),
        "sp_y" => write!(w, "{}", Tenths(chart_y(s.setpoint, range))),
        "path" => {
            chart_path(view, range, w);
            Ok(())
        }
        "span" => {
            let s = view.history.len() as u64 * u64::from(view.history.period_ms()) / 1000;
            if s >= 3600 {
                write!(w, "{}.{} h", s / 3600, s % 3600 / 360)
            } else {
                write!(w, "{} min", (s + 30) / 60)
            }
        }
        "min" => write!(w, "{SETPOINT_MIN_C}"),
        "max" => write!(w, "{SETPOINT_MAX_C}"),
        "last_command" => w.write_str(s.last_command.map_or("", CommandOutcome::name)),
        _ => Ok(()),
    };
}
