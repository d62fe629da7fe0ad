//! HTTP sessions of the simulated board, as RepRapFirmware keeps them.
//!
//! - `rr_connect?password=…` checks the machine password (none set: any password is
//!   accepted) and opens a session; with `sessionKey=yes` the session gets a key, which
//!   the client sends back as `X-Session-Key` on every later request. Without a key
//!   the session belongs to the client's IP address.
//! - Every other `rr_` request needs a live session: the one its `X-Session-Key` names
//!   (a key that names none: 401), else the keyless session of its address. With no
//!   password set a request without a session opens one, as RepRapFirmware does; with
//!   a password it is answered 401.
//! - A session ends after [`SessionConfig::timeout`] without a request
//!   (RepRapFirmware: 8 s), with `rr_disconnect`, or when [`MAX_SESSIONS`] are open
//!   and a new one is wanted (`{"err":2}` from `rr_connect`).
//! - Each session has its own place in the G-code reply log (`rr_reply`).

use std::string::String;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// Sessions open at once (RepRapFirmware's `MaxHttpSessions`).
pub const MAX_SESSIONS: usize = 8;

/// How sessions are checked.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The machine password (`M551`); `None`: no password is set.
    pub password: Option<String>,
    /// A session ends after this long without a request.
    pub timeout: Duration,
}

/// Why a request has no session.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// `rr_connect` with the wrong password (`{"err":1}`).
    WrongPassword,
    /// `rr_connect` when every session is taken (`{"err":2}`).
    NoMoreSessions,
    /// Not logged in, or the session timed out, or the key names no session (401).
    NotAuthorized,
    /// `X-Session-Key` is not a number, or is sent twice (400).
    BadKey,
}

/// One session.
#[derive(Clone, Debug)]
struct Session {
    /// 0: a keyless session, found by `ip`.
    key: u32,
    ip: u32,
    last_seen: Instant,
    /// The last reply-log sequence number this session has read.
    reply_seen: u64,
}

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    open: Vec<Session>,
    /// State of the key generator (xorshift; keys need not be secret from the
    /// client that holds them, only unguessable enough not to collide).
    seed: u64,
}

/// A handle to a session found by [`Sessions::check`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SessionId(usize);

impl Sessions {
    /// No session open.
    pub fn new(config: SessionConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1;
        Sessions {
            config,
            open: Vec::new(),
            seed,
        }
    }

    /// The session timeout, for `rr_connect`'s `sessionTimeout`.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// Whether a machine password is set.
    pub fn password_set(&self) -> bool {
        self.config.password.is_some()
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.config.timeout;
        self.open
            .retain(|s| now.saturating_duration_since(s.last_seen) < timeout);
    }

    fn next_key(&mut self) -> u32 {
        loop {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let key = (self.seed >> 16) as u32;
            if key != 0 && self.open.iter().all(|s| s.key != key) {
                return key;
            }
        }
    }

    /// `rr_connect`: check the password and open (or refresh) a session; with
    /// `want_key`, a keyed one. Returns the key (0 for a keyless session).
    /// `reply_seq` is the reply log's newest number: a new session reads only what
    /// comes after it.
    pub fn connect(
        &mut self,
        password: Option<&str>,
        want_key: bool,
        ip: u32,
        now: Instant,
        reply_seq: u64,
    ) -> Result<u32, AuthError> {
        self.expire(now);
        if let Some(pw) = &self.config.password {
            if password != Some(pw.as_str()) {
                return Err(AuthError::WrongPassword);
            }
        }
        if !want_key {
            if let Some(s) = self.open.iter_mut().find(|s| s.key == 0 && s.ip == ip) {
                s.last_seen = now;
                return Ok(0);
            }
        }
        if self.open.len() >= MAX_SESSIONS {
            return Err(AuthError::NoMoreSessions);
        }
        let key = if want_key { self.next_key() } else { 0 };
        self.open.push(Session {
            key,
            ip,
            last_seen: now,
            reply_seen: reply_seq,
        });
        Ok(key)
    }

    /// The session of a request (`key`: its `X-Session-Key` header), refreshed; with
    /// no password set, a keyless session is opened for a request without one.
    pub fn check(
        &mut self,
        key: Result<Option<&str>, ()>,
        ip: u32,
        now: Instant,
        reply_seq: u64,
    ) -> Result<SessionId, AuthError> {
        self.expire(now);
        let key = match key {
            Err(()) => return Err(AuthError::BadKey),
            Ok(None) => None,
            Ok(Some(k)) => Some(k.trim().parse::<u32>().map_err(|_| AuthError::BadKey)?),
        };
        let found = match key {
            Some(k) => self.open.iter().position(|s| s.key == k && k != 0),
            None => self.open.iter().position(|s| s.key == 0 && s.ip == ip),
        };
        if let Some(i) = found {
            self.open[i].last_seen = now;
            return Ok(SessionId(i));
        }
        if key.is_some() || self.password_set() {
            return Err(AuthError::NotAuthorized);
        }
        match self.connect(None, false, ip, now, reply_seq) {
            Ok(_) => self
                .open
                .iter()
                .position(|s| s.key == 0 && s.ip == ip)
                .map(SessionId)
                .ok_or(AuthError::NotAuthorized),
            Err(_) => Err(AuthError::NotAuthorized),
        }
    }

    /// `rr_disconnect`: end the session. Whether there was one to end.
    pub fn disconnect(&mut self, id: SessionId) -> bool {
        if id.0 < self.open.len() {
            self.open.remove(id.0);
            true
        } else {
            false
        }
    }

    /// The reply-log number session `id` has read up to; then mark `upto` read.
    pub fn take_replies(&mut self, id: SessionId, upto: u64) -> u64 {
        match self.open.get_mut(id.0) {
            Some(s) => std::mem::replace(&mut s.reply_seen, upto),
            None => upto,
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(password: Option<&str>) -> Sessions {
        Sessions::new(SessionConfig {
            password: password.map(String::from),
            timeout: Duration::from_secs(8),
        })
    }

    #[test]
    fn keys_passwords_and_timeouts() {
        let t = Instant::now();
        let mut s = sessions(Some("secret"));
        assert_eq!(
            s.connect(Some("nope"), true, 1, t, 0),
            Err(AuthError::WrongPassword)
        );
        assert_eq!(s.check(Ok(None), 1, t, 0), Err(AuthError::NotAuthorized));
        let key = s.connect(Some("secret"), true, 1, t, 0).unwrap();
        assert_ne!(key, 0);
        let k = std::format!("{key}");
        assert!(s.check(Ok(Some(&k)), 2, t, 0).is_ok());
        assert_eq!(s.check(Ok(Some("12x")), 1, t, 0), Err(AuthError::BadKey));
        assert_eq!(s.check(Err(()), 1, t, 0), Err(AuthError::BadKey));
        // A keyed session does not open the door for its address without the key.
        assert_eq!(s.check(Ok(None), 1, t, 0), Err(AuthError::NotAuthorized));
        // Requests keep it alive; silence ends it.
        let later = t + Duration::from_secs(7);
        assert!(s.check(Ok(Some(&k)), 1, later, 0).is_ok());
        let gone = later + Duration::from_secs(8);
        assert_eq!(s.check(Ok(Some(&k)), 1, gone, 0), Err(AuthError::NotAuthorized));
        assert!(s.is_empty());
    }

    #[test]
    fn without_a_password_any_request_opens_a_session_and_they_are_bounded() {
        let t = Instant::now();
        let mut s = sessions(None);
        assert!(s.check(Ok(None), 7, t, 0).is_ok());
        assert_eq!(s.len(), 1);
        for _ in 1..MAX_SESSIONS {
            s.connect(Some("anything"), true, 7, t, 0).unwrap();
        }
        assert_eq!(s.connect(None, true, 7, t, 0), Err(AuthError::NoMoreSessions));
        let id = s.check(Ok(None), 7, t, 0).unwrap();
        assert!(s.disconnect(id));
        assert_eq!(s.len(), MAX_SESSIONS - 1);
    }
}
