//! The launcher's logic, kept free of system calls where it can be, so that it is unit-tested on
//! the host. The launcher executable itself (`src/main.rs`) adds start-up, system calls and the
//! launch.
#![cfg_attr(not(test), no_std)]

pub mod cpu;
pub mod exit;
pub mod message;
pub mod name;
pub mod select;
pub mod switches;
