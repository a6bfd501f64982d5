//! Integration tests: one binary, one module per area, a shared rig in `helpers`.

mod architecture;
mod bad_input;
mod cli;
mod config_files;
mod config_refusals;
mod consumers;
mod daemon;
mod engine;
mod events;
mod fault_matrix;
mod helpers;
mod hostile;
mod hostile_names;
mod kill;
mod masv_client;
mod metrics;
mod metrics_limits;
mod notify;
mod operator;
mod planted_links;
mod simulator;
mod store;
mod store_faults;
mod tls;
mod vault;
mod vault_faults;
