//! The Duet HTTP API of the simulated board, after RepRapFirmware's `HttpResponder`:
//! admission of a request head (route, method, origin, session, length, room on the
//! card) and the response to a complete request.
//!
//! | Route | Method | Answer |
//! |---|---|---|
//! | `/rr_connect?password=&sessionKey=yes` | GET | `{"err":0,"sessionTimeout":…,"boardType":…,"apiLevel":1[,"sessionKey":K]}`; wrong password `{"err":1}`, no session free `{"err":2}` |
//! | `/rr_disconnect` | GET | `{"err":0}` |
//! | `/rr_gcode?gcode=` | GET | `{"buff":N}`, the codes queued; 503 while the buffer has no room for them |
//! | `/rr_reply` | GET | `text/plain`: the replies this session has not read yet |
//! | `/rr_model?key=&flags=` | GET | `{"key":…,"flags":…,"result":…}` ([`model`](super::model)) |
//! | `/rr_upload?name=&crc32=` | POST | `{"err":0}`, or `{"err":1}` for a CRC mismatch |
//! | `/rr_download?name=` | GET | the file, or 404 |
//! | `/rr_delete?name=&recursive=yes` | GET | `{"err":0}` or `{"err":1}` |
//! | `/rr_move?old=&new=&deleteexisting=yes` | GET | `{"err":0}` or `{"err":1}` |
//! | `/rr_mkdir?dir=` | GET | `{"err":0}` or `{"err":1}` |
//! | `/rr_fileinfo[?name=]` | GET | the file's information (without `name`: the job's, with `printDuration`), or `{"err":1}` |
//! | `/rr_filelist?dir=&first=&max=` | GET | `{"dir","first","files":[{"type","name","size"}],"next"}`; `{"err":2}` for a missing directory |
//! | `/rr_files?dir=&first=&max=&flagDirs=1` | GET | the same with names only (`*` before a directory's with `flagDirs=1`) |
//! | `/rr_diag` | GET | the WiFi module's pool report as JSON (this simulator's own) |
//! | any other path | GET | a web file from `0:/www/` (the `.gz` variant first, with `Content-Encoding: gzip`), or 404 |
//!
//! Names take the drive prefix or not (`0:/gcodes/a.g`, `/gcodes/a.g`, `gcodes/a.g`).
//! Every `rr_` request but `rr_connect` needs a session ([`session`](super::session));
//! without one it is answered 401 (web files need none, as in RepRapFirmware).
//!
//! **Requests from another origin.** The API changes state with GET requests, which
//! any page can make a browser send (`<img src=…/rr_gcode?gcode=M0>`). So every `rr_`
//! request that a browser marks as coming from another page's origin is refused with
//! 403 before anything else: `Sec-Fetch-Site` other than `same-origin` or `none`, an
//! `Origin` other than `http://` + its own `Host` (or more than one), or, without an
//! `Origin`, a `Referer` from another origin. No CORS header is ever sent. Clients
//! that are not browsers send none of these fields and are not affected; the web
//! app served from the board itself is same-origin.

use std::format;
use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::vec::Vec;

use serde_json::{json, Value};

use super::card;
use super::files;
use super::gcode::QueueError;
use super::http::{self, HttpError, Request};
use super::model::{self, BoardInfo, Flags};
use super::sam::{bump, Sam, SamStats};
use super::session::{AuthError, SessionId};
use crate::protocol::Command;

/// The upload route.
pub(super) const UPLOAD: &str = "/rr_upload";

/// The `rr_` routes answered to GET and HEAD.
const GET_ROUTES: [&str; 13] = [
    "/rr_connect",
    "/rr_disconnect",
    "/rr_gcode",
    "/rr_reply",
    "/rr_model",
    "/rr_download",
    "/rr_delete",
    "/rr_move",
    "/rr_mkdir",
    "/rr_fileinfo",
    "/rr_filelist",
    "/rr_files",
    "/rr_diag",
];

/// How long the board waits for the WiFi module's diagnostics on its UART.
const DIAG_WAIT: Duration = Duration::from_millis(500);

/// Board type `rr_connect` reports.
const BOARD_TYPE: &str = "duetwifi102";

/// A response before it is framed.
pub(super) struct HttpReply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    gzip: bool,
}

fn json_reply(status: u16, v: &Value) -> HttpReply {
    HttpReply {
        status,
        content_type: "application/json",
        body: v.to_string().into_bytes(),
        gzip: false,
    }
}

fn err(code: u8) -> HttpReply {
    json_reply(200, &json!({ "err": code }))
}

/// The JSON body of an error response.
pub(super) fn error_body(message: &str) -> Vec<u8> {
    json!({"err": 1, "error": message}).to_string().into_bytes()
}

fn bad(stats: &SamStats, why: &str) -> HttpReply {
    bump(&stats.bad_requests);
    json_reply(400, &json!({"err": 1, "error": why}))
}

/// Whether a browser marks the request as made by a page of another origin (see the
/// module docs).
fn foreign_origin(req: &Request) -> bool {
    let Ok(host) = req.header("host") else {
        return true;
    };
    let own = |origin: &str| {
        let origin = origin.trim();
        host.is_some_and(|h| {
            origin.len() > 7
                && origin[..7].eq_ignore_ascii_case("http://")
                && origin[7..].eq_ignore_ascii_case(h)
        })
    };
    match req.header("sec-fetch-site") {
        Ok(None) => {}
        Ok(Some("same-origin" | "none")) => {}
        _ => return true,
    }
    match req.header("origin") {
        Ok(Some(origin)) => return !own(origin),
        Ok(None) => {}
        Err(()) => return true,
    }
    match req.header("referer") {
        Ok(None) => false,
        Ok(Some(r)) => {
            // The referring page's origin: scheme and authority, up to the next `/`.
            let after_scheme = r.find("://").map_or(r.len(), |i| i + 3);
            let end = r[after_scheme..].find('/').map_or(r.len(), |i| after_scheme + i);
            !own(&r[..end])
        }
        Err(()) => true,
    }
}

fn param_usize(req: &Request, name: &str, default: usize) -> Result<usize, ()> {
    match req.param(name) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| ()),
    }
}

impl Sam {
    /// Check a complete head before its body is read: route, method, origin, session,
    /// length, name, room on the card.
    pub(super) fn admit(&mut self, i: usize) -> Result<(), HttpError> {
        let Some(req) = self.sockets[i].exchange.head() else {
            return Ok(());
        };
        let path = req.path.as_str();
        if !path.starts_with("/rr_") {
            // A web file.
            if !matches!(req.method.as_str(), "GET" | "HEAD") {
                return Err(HttpError {
                    allow: Some("GET, HEAD"),
                    ..HttpError::new(405, "method not allowed")
                });
            }
            if req.body_len() > http::MAX_HEAD {
                return Err(HttpError::new(413, "body too large"));
            }
            return Ok(());
        }
        let get = GET_ROUTES.contains(&path);
        if !get && path != UPLOAD {
            return Err(HttpError::new(404, "not found"));
        }
        if get && !matches!(req.method.as_str(), "GET" | "HEAD") {
            return Err(HttpError {
                allow: Some("GET, HEAD"),
                ..HttpError::new(405, "method not allowed")
            });
        }
        if !get && req.method != "POST" {
            return Err(HttpError {
                allow: Some("POST"),
                ..HttpError::new(405, "method not allowed")
            });
        }
        if foreign_origin(req) {
            return Err(HttpError::new(
                403,
                "requests from another origin are not accepted",
            ));
        }
        if get {
            if req.body_len() > http::MAX_HEAD {
                return Err(HttpError::new(413, "body too large"));
            }
            return Ok(());
        }
        // The upload: a session first, then its length, name and room.
        let Some(len) = req.content_length else {
            return Err(HttpError::new(411, "an upload needs Content-Length"));
        };
        if len > self.config.max_upload {
            return Err(HttpError::new(413, "upload larger than the board accepts"));
        }
        let name = req.param("name").ok_or(HttpError::new(400, "missing name"))?;
        let name = card::normalise(name, false).map_err(|e| HttpError::new(400, e.message()))?;
        let key = req.header("x-session-key").map(|k| k.map(str::to_string));
        let ip = self.sockets[i].remote_ip;
        self.session(key, ip)?;
        let in_flight: usize = (0..self.sockets.len())
            .filter(|&j| j != i)
            .map(|j| self.sockets[j].reserved())
            .sum();
        let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        let used = card::used(&files, Some(&name)) + in_flight;
        if used.saturating_add(len) > self.config.card_capacity {
            return Err(HttpError::new(507, "SD card full"));
        }
        Ok(())
    }

    /// The session of a request with `X-Session-Key` `key` from `ip` (401 without).
    fn session(&mut self, key: Result<Option<String>, ()>, ip: u32) -> Result<SessionId, HttpError> {
        let seq = self.machine.reply_seq();
        match self.sessions.check(
            key.as_ref().map(|k| k.as_deref()).map_err(|_| ()),
            ip,
            Instant::now(),
            seq,
        ) {
            Ok(id) => Ok(id),
            Err(AuthError::BadKey) => Err(HttpError::new(400, "bad X-Session-Key")),
            Err(_) => Err(HttpError::new(401, "not authorized: log in with rr_connect")),
        }
    }

    /// The response to a complete, admitted request on socket `i`.
    pub(super) fn handle(&mut self, i: usize, req: &Request, body: Vec<u8>) -> Vec<u8> {
        let head_only = req.method == "HEAD";
        let r = match self.route(i, req, body) {
            Ok(r) => r,
            Err(e) => {
                match e.status {
                    401 | 403 | 400 => bump(&self.shared.stats.bad_requests),
                    _ => {}
                }
                json_reply(e.status, &json!({"err": 1, "error": e.message}))
            }
        };
        self.shared.log_request(Some(req), r.status);
        let extra: &[(&str, &str)] = if r.gzip {
            &[("Content-Encoding", "gzip")]
        } else {
            &[]
        };
        http::response(r.status, r.content_type, &r.body, extra, head_only)
    }

    fn route(&mut self, i: usize, req: &Request, body: Vec<u8>) -> Result<HttpReply, HttpError> {
        let path = req.path.as_str();
        if !path.starts_with("/rr_") {
            return Ok(self.web_file(path));
        }
        let ip = self.sockets[i].remote_ip;
        if path == "/rr_connect" {
            return Ok(self.connect(req, ip));
        }
        // The upload's session was checked (and kept alive) when it was admitted.
        let id = if path == UPLOAD {
            None
        } else {
            let key = req.header("x-session-key").map(|k| k.map(str::to_string));
            Some(self.session(key, ip)?)
        };
        let stats = &self.shared.stats;
        let name = |key: &str, root: bool| -> Result<String, HttpReply> {
            let n = req
                .param(key)
                .ok_or_else(|| bad(stats, &format!("missing {key}")))?;
            card::normalise(n, root).map_err(|e| bad(stats, e.message()))
        };
        let reply = match path {
            "/rr_disconnect" => err(u8::from(!id.is_some_and(|id| self.sessions.disconnect(id)))),
            "/rr_gcode" => {
                let Some(codes) = req.param("gcode") else {
                    return Ok(bad(stats, "missing gcode"));
                };
                match self.machine.put(codes) {
                    Ok(()) => json_reply(200, &json!({"buff": self.machine.buffer_space()})),
                    Err(QueueError::TooLong) => bad(stats, "G-code longer than the input buffer"),
                    Err(QueueError::Full) => json_reply(
                        503,
                        &json!({"err": 1, "error": "G-code buffer full: try again", "buff": self.machine.buffer_space()}),
                    ),
                }
            }
            "/rr_reply" => {
                let upto = self.machine.reply_seq();
                let seen = id.map_or(upto, |id| self.sessions.take_replies(id, upto));
                HttpReply {
                    status: 200,
                    content_type: "text/plain",
                    body: self.machine.replies_after(seen).into_bytes(),
                    gzip: false,
                }
            }
            "/rr_model" => {
                let key = req.param("key").unwrap_or("");
                let flags = req.param("flags").unwrap_or("");
                let model = self.object_model();
                match model::query(&model, key, &Flags::parse(flags)) {
                    Ok(result) => json_reply(200, &json!({"key": key, "flags": flags, "result": result})),
                    Err(_) => bad(stats, "malformed key"),
                }
            }
            UPLOAD => {
                // Admitted: the name is good and the card had room for it.
                let Ok(name) = name("name", false) else {
                    return Ok(bad(stats, "bad name"));
                };
                let expected = match req.param("crc32") {
                    Some(hex) => match u32::from_str_radix(hex.trim_start_matches("0x"), 16) {
                        Ok(v) => Some(v),
                        Err(_) => return Ok(bad(stats, "bad crc32")),
                    },
                    None => None,
                };
                let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&body);
                if expected.is_some_and(|e| e != crc) {
                    bump(&stats.uploads_bad_crc);
                    return Ok(err(1));
                }
                bump(&stats.uploads_ok);
                self.shared
                    .files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, body);
                self.machine.seqs.directories += 1;
                err(0)
            }
            "/rr_download" => {
                let name = match name("name", false) {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
                match files.get(&name) {
                    Some(content) => HttpReply {
                        status: 200,
                        content_type: "application/octet-stream",
                        body: content.clone(),
                        gzip: false,
                    },
                    None => json_reply(404, &json!({"err": 1})),
                }
            }
            "/rr_delete" | "/rr_move" | "/rr_mkdir" => match self.file_change(req) {
                Ok(r) => r,
                Err(r) => r,
            },
            "/rr_fileinfo" => match req.param("name") {
                Some(_) => match name("name", false) {
                    Ok(n) => self.file_info(&n),
                    Err(r) => r,
                },
                None => self.job_info(),
            },
            "/rr_filelist" | "/rr_files" => match self.file_list(req) {
                Ok(r) => r,
                Err(r) => r,
            },
            "/rr_diag" => match self.module_diagnostics() {
                Ok(msg) => json_reply(200, &super::diag_json(&msg)),
                Err(e) => json_reply(503, &json!({"err": 1, "error": e})),
            },
            _ => json_reply(404, &json!({"err": 1, "error": "not found"})),
        };
        Ok(reply)
    }

    fn connect(&mut self, req: &Request, ip: u32) -> HttpReply {
        // The documented default of a missing password.
        let password = req.param("password").unwrap_or("reprap");
        let want_key = req.param("sessionKey") == Some("yes");
        let seq = self.machine.reply_seq();
        match self
            .sessions
            .connect(Some(password), want_key, ip, Instant::now(), seq)
        {
            Ok(key) => {
                let mut v = json!({"err": 0, "sessionTimeout": self.sessions.timeout().as_millis() as u64,
                                   "boardType": BOARD_TYPE, "apiLevel": 1});
                if want_key {
                    v["sessionKey"] = json!(key);
                }
                json_reply(200, &v)
            }
            Err(AuthError::NoMoreSessions) => err(2),
            Err(_) => err(1),
        }
    }

    /// `rr_delete`, `rr_move`, `rr_mkdir`.
    fn file_change(&mut self, req: &Request) -> Result<HttpReply, HttpReply> {
        let stats = &self.shared.stats;
        let name = |key: &str| -> Result<String, HttpReply> {
            let n = req
                .param(key)
                .ok_or_else(|| bad(stats, &format!("missing {key}")))?;
            card::normalise(n, false).map_err(|e| bad(stats, e.message()))
        };
        let mut files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut dirs = self.shared.dirs.lock().unwrap_or_else(|e| e.into_inner());
        let ok = match req.path.as_str() {
            "/rr_delete" => {
                let n = name("name")?;
                files::delete(&mut files, &mut dirs, &n, req.param("recursive") == Some("yes"))
            }
            "/rr_move" => {
                let (old, new) = (name("old")?, name("new")?);
                let replace = req.param("deleteexisting") == Some("yes");
                files::rename(&mut files, &mut dirs, &old, &new, replace).is_ok()
            }
            _ => files::mkdir(&files, &mut dirs, &name("dir")?).is_ok(),
        };
        if ok {
            self.machine.seqs.directories += 1;
        }
        Ok(err(u8::from(!ok)))
    }

    fn file_info(&self, name: &str) -> HttpReply {
        let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        let Some(content) = files.get(name) else {
            return err(1);
        };
        let i = files::gcode_info(content);
        json_reply(
            200,
            &json!({"err": 0, "fileName": name, "size": content.len(), "height": i.height,
                    "firstLayerHeight": i.first_layer_height, "layerHeight": i.layer_height,
                    "numLayers": i.num_layers, "filament": [i.filament], "generatedBy": i.generated_by.unwrap_or_default(),
                    "printTime": 0, "simulatedTime": 0, "thumbnails": []}),
        )
    }

    fn job_info(&self) -> HttpReply {
        let Some(job) = &self.machine.job else {
            return err(1);
        };
        let mut r = self.file_info(&job.file);
        if let Ok(mut v) = serde_json::from_slice::<Value>(&r.body) {
            v["printDuration"] = json!(job.duration(Instant::now()).as_secs());
            r.body = v.to_string().into_bytes();
        }
        r
    }

    /// `rr_filelist` (entries with type and size) and `rr_files` (names), paged by
    /// `first` and `max`.
    fn file_list(&self, req: &Request) -> Result<HttpReply, HttpReply> {
        let stats = &self.shared.stats;
        let names_only = req.path == "/rr_files";
        let dir = match (req.param("dir"), names_only) {
            (Some(d), _) => d,
            (None, true) => "0:/gcodes",
            (None, false) => return Err(bad(stats, "missing dir")),
        };
        let dir = card::normalise(dir, true).map_err(|e| bad(stats, e.message()))?;
        let first = param_usize(req, "first", 0).map_err(|_| bad(stats, "bad first"))?;
        let max = match req.param("max") {
            None | Some("") | Some("-1") => usize::MAX,
            Some(m) => m.parse().map_err(|_| bad(stats, "bad max"))?,
        };
        let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        let dirs = self.shared.dirs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entries) = files::list(&files, &dirs, &dir) else {
            return Ok(err(2));
        };
        let page: Vec<&files::Entry> = entries.iter().skip(first).take(max).collect();
        let next = if first.saturating_add(page.len()) < entries.len() {
            first + page.len()
        } else {
            0
        };
        let flag_dirs = req.param("flagDirs") == Some("1");
        let listed: Vec<Value> = page
            .iter()
            .map(|e| match (names_only, e.is_dir && flag_dirs) {
                (true, true) => json!(format!("*{}", e.name)),
                (true, false) => json!(e.name),
                (false, _) => {
                    json!({"type": if e.is_dir { "d" } else { "f" }, "name": e.name, "size": e.size})
                }
            })
            .collect();
        Ok(json_reply(
            200,
            &json!({"dir": dir, "first": first, "files": listed, "next": next, "err": 0}),
        ))
    }

    fn web_file(&self, path: &str) -> HttpReply {
        let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        match files::web_file(&files, path) {
            Some((name, gzip)) => HttpReply {
                status: 200,
                content_type: files::content_type(&name),
                body: files.get(&name).cloned().unwrap_or_default(),
                gzip,
            },
            None => json_reply(404, &json!({"err": 1, "error": "not found"})),
        }
    }

    fn object_model(&self) -> Value {
        let used = card::used(&self.shared.files.lock().unwrap_or_else(|e| e.into_inner()), None);
        let b = BoardInfo {
            host_name: &self.config.host_name,
            ssid: &self.config.ssid,
            ip: self.ip,
            up_secs: self.booted.elapsed().as_secs_f64(),
            card: (self.config.card_capacity, used),
        };
        model::full(&self.machine, &b, Instant::now())
    }

    /// `diagnostics` over SPI; the module's report arrives on its UART.
    pub(super) fn module_diagnostics(&mut self) -> Result<super::DiagMessage, String> {
        while self.uart.try_recv().is_ok() {}
        self.cmd(Command::Diagnostics, 0, 0, &[], 0)
            .map_err(|code| format!("diagnostics: {code}"))?;
        self.uart
            .recv_timeout(DIAG_WAIT)
            .map_err(|_| "no diagnostics from the module".to_string())
    }

    /// Advance the print and execute one queued code. Whether a code ran.
    pub(super) fn run_machine(&mut self) -> bool {
        let now = Instant::now();
        self.machine.tick(now);
        let Some(code) = self.machine.next_code() else {
            return false;
        };
        let word = code.split_whitespace().next().unwrap_or("");
        let report = if word.eq_ignore_ascii_case("M122") {
            Some(match self.module_diagnostics() {
                Ok(msg) => super::diag_text(&msg),
                Err(e) => format!("{e}\n"),
            })
        } else {
            None
        };
        let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        let dirs = self.shared.dirs.lock().unwrap_or_else(|e| e.into_inner());
        self.machine
            .execute(&code, (&files, &dirs), report.as_deref(), now);
        true
    }
}
