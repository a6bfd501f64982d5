//! masv-key-rotator: keeps a MASV team's API keys rotated and their current
//! secrets in HashiCorp Vault (or OpenBao).
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that tests can
//! drive every command in-process with their own clock, simulator and shutdown token.
#![forbid(unsafe_code)]

pub mod anchor;
pub mod app;
pub mod bounded_body;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod error_chain;
pub mod escape;
pub mod exit;
pub mod lease;
pub mod local_http;
pub mod lock;
pub mod logging;
pub mod masv;
pub mod metrics;
pub mod notify;
pub mod plain_http;
pub mod redact;
pub mod reload;
pub mod services;
pub mod simulator;
pub mod state_files;
pub mod store;
pub mod systemd;
pub mod traffic;
pub mod vault;
pub mod view;
