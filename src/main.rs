//! The `masv-key-rotator` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use masv_key_rotator::cli::Cli;
use masv_key_rotator::commands;
use masv_key_rotator::exit::CommandError;

fn main() -> ExitCode {
    // One malloc arena for all threads: the database connections' worker
    // threads come and go, and memory left in their own arenas stayed resident.
    idle_memory::limit_arenas(1);
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let error = CommandError::failed(format_args!("cannot start the async runtime: {e}"));
            return commands::finish(Err(error)).into();
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    runtime.block_on(commands::run(cli, shutdown)).into()
}
