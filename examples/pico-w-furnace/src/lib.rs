//! The Pico W furnace controller (being written).
#![no_std]
