//! The simulated board's WiFi startup, after RepRapFirmware's `WiFiInterface`: wait
//! for two rising edges of the request line and for stable pins, then
//! `networkGetStatus` (≥ 140 bytes) and `networkSetHostName` (64 bytes), fetch the
//! status change with `networkGetLastError`, ask for client mode
//! (`networkStartClient`), wait for the request pulse that says the mode changed, then
//! `networkListen` on the HTTP port with the configured cap.

use std::format;
use std::string::String;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::sam::Sam;
use crate::protocol::{
    Command, ListenOrConnectData, NetworkStatusResponse, Protocol, WiFiState, HOST_NAME_LENGTH,
};

impl Sam {
    pub(super) fn start(&mut self, stop: &AtomicBool) -> Result<(), String> {
        // Two rising edges of the request line: out of reset, then initialised.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.link.request_rises() < 2 {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return Err("WiFi module start timed out".into());
            }
            self.link.wait_request_rise(1, Duration::from_millis(50));
        }
        // Stable pins for a while.
        let mut stable_since = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(50) {
            if !self.link.pins_idle() {
                stable_since = Instant::now();
            }
            if Instant::now() > deadline {
                return Err("WiFi module pins not stable".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut status = None;
        for _ in 0..4 {
            match self.cmd(Command::NetworkGetStatus, 0, 0, &[], NetworkStatusResponse::SIZE) {
                Ok((n, data)) if n as usize >= NetworkStatusResponse::MIN_LEN => {
                    status = NetworkStatusResponse::decode(&data).ok();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if status.is_none() {
            return Err("failed to initialise WiFi module".into());
        }
        let mut name = [0u8; HOST_NAME_LENGTH];
        let n = self.config.host_name.len().min(HOST_NAME_LENGTH - 1);
        name[..n].copy_from_slice(&self.config.host_name.as_bytes()[..n]);
        if let Err(code) = self.cmd(Command::NetworkSetHostName, 0, 0, &name, 0) {
            self.shared
                .message(format!("failed to set WiFi hostname: {code}"));
        }
        self.rises_seen = self.link.request_rises();
        self.get_last_error();
        // Client mode.
        let mut ssid = [0u8; 32];
        let n = self.config.ssid.len().min(31);
        ssid[..n].copy_from_slice(&self.config.ssid.as_bytes()[..n]);
        if self.mode == WiFiState::Idle {
            if let Err(code) = self.cmd(Command::NetworkStartClient, 0, 0, &ssid, 0) {
                return Err(format!("failed to change WiFi mode: {code}"));
            }
        }
        while !matches!(self.mode, WiFiState::Connected | WiFiState::RunningAsAccessPoint) {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return Err("WiFi module did not connect".into());
            }
            self.link
                .wait_request_rise(self.rises_seen, Duration::from_millis(50));
            if self.status_changed() {
                self.get_last_error();
            }
        }
        if let Ok((n, data)) = self.cmd(Command::NetworkGetStatus, 0, 0, &[], NetworkStatusResponse::SIZE) {
            if let Ok(s) = NetworkStatusResponse::decode(&data[..(n as usize).min(data.len())]) {
                self.ip = s.ip_address.to_le_bytes();
            }
        }
        // Listen for HTTP.
        let lcd = ListenOrConnectData {
            remote_ip: 0,
            protocol: Protocol::Http.value(),
            port: self.config.http_port,
            max_connections: self.config.http_max_conns + self.config.http_queue,
        };
        let before = self.shared.messages.lock().map(|m| m.len()).unwrap_or(0);
        if let Err(code) = self.cmd(Command::NetworkListen, 0, 0, &lcd.encode(), 0) {
            return Err(format!("networkListen failed: {code}"));
        }
        // A failure comes back as a status change (request pulse + last error).
        let rises = self.rises_seen;
        self.link.wait_request_rise(rises, Duration::from_millis(150));
        if self.status_changed() {
            self.get_last_error();
        }
        let messages = self
            .shared
            .messages
            .lock()
            .map(|m| m[before..].to_vec())
            .unwrap_or_default();
        if let Some(m) = messages.iter().find(|m| m.contains("Listen failed")) {
            return Err(format!("WiFi module reported: {m}"));
        }
        Ok(())
    }
}
