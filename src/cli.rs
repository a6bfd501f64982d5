//! The command line (docs/design.md, section 2), declared with clap's derive API.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ENV_CONFIG_PATH;

/// Keeps a MASV team's API keys rotated and their current secrets in Vault.
#[derive(Debug, Parser)]
#[command(name = "masv-key-rotator", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [default: $MASV_KEY_ROTATOR_CONFIG, else /etc/masv-key-rotator/config.toml]
    #[arg(long, global = true, value_name = "PATH", env = ENV_CONFIG_PATH, hide_env = true)]
    pub config: Option<PathBuf>,

    /// Log at debug level (secrets are never logged at any level).
    #[arg(long, global = true)]
    pub debug: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: sweep on the schedule until SIGTERM/SIGINT.
    Run,
    /// One sweep, then exit.
    Once {
        /// Print the plan and change nothing anywhere.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rotate one lineage now.
    Rotate {
        /// The MASV team id.
        #[arg(long)]
        team: String,
        /// The lineage: the keys' name.
        #[arg(long)]
        name: String,
    },
    /// Each managed key: lineage, state, expiry, last use, next action and when.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The audit log.
    History {
        /// Only rows about this key id.
        #[arg(long)]
        key: Option<String>,
        /// Only rows newer than this (e.g. 7d, 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Check the hash chain and name the first bad row.
        #[arg(long, conflicts_with = "follow")]
        verify: bool,
        /// Keep running and print new rows as they are written (with --json: one
        /// JSON object per line), until SIGTERM or SIGINT.
        #[arg(long)]
        follow: bool,
    },
    /// Compliance evidence per lineage.
    Report {
        #[arg(long, value_enum, default_value = "md")]
        format: crate::commands::report::ReportFormat,
    },
    /// Validate the config, log in to MASV and check the Vault token can write.
    CheckConfig,
    /// A self-contained run against the built-in MASV simulator.
    Demo,
    /// Print a shell completion script to stdout (for bash, zsh or fish).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print this program's manual page (roff, section 1) to stdout.
    Man,
    /// Serve the built-in MASV simulator on a port (for trying a config without real keys).
    Simulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The simulated team's id.
        #[arg(long, default_value = "01FB4S68W7RAW4M89801H1C4CR")]
        team: String,
        /// The simulated Owner's email.
        #[arg(long, default_value = "owner@simulator.invalid")]
        email: String,
        /// File holding the Owner's password (use the config's masv.password_file).
        #[arg(long)]
        password_file: PathBuf,
        /// Seed a few keys in different situations.
        #[arg(long)]
        seed_examples: bool,
    },
}

/// The shells `completions` writes a script for: the ones Debian ships a
/// vendor completion directory for (bash-completion, zsh, fish).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}
