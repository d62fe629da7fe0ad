//! The Duet WiFi-to-SPI bridge (being written).
#![no_std]
