//! `simulate`: serve the built-in MASV simulator on a port, so a config can point
//! at it (`masv.base_url`) for trying the daemon without touching real keys.
//! The owner's password is read from the same file the config's
//! `masv.password_file` names.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::exit::{CommandError, CommandResult, Exit};
use crate::masv::KeyState;
use crate::simulator::{Role, SeedKey, Simulator};

pub struct SimulateArgs<'a> {
    pub listen: SocketAddr,
    pub team: &'a str,
    pub email: &'a str,
    pub password_file: &'a Path,
    pub seed_examples: bool,
}

pub async fn run(args: SimulateArgs<'_>) -> CommandResult {
    let password = match std::fs::read_to_string(args.password_file) {
        Ok(p) if !p.trim_end_matches(['\r', '\n']).is_empty() => {
            p.trim_end_matches(['\r', '\n']).to_string()
        }
        Ok(_) => {
            return Err(CommandError::usage(format_args!(
                "--password-file {}: the file is empty",
                args.password_file.display()
            )));
        }
        Err(e) => {
            return Err(CommandError::usage(format_args!(
                "--password-file {}: {e}",
                args.password_file.display()
            )));
        }
    };
    let clock = Arc::new(SystemClock);
    let now = clock.now();
    let sim = Simulator::new(clock);
    sim.add_team(args.team, "Simulated team");
    sim.add_user(args.email, &password, Role::Owner, &[args.team]);
    if args.seed_examples {
        let seed = |name: &str, state: KeyState, age: i64, expires: Option<i64>| {
            let mut s = SeedKey::active(name);
            s.state = state;
            s.created_at = Some(now - Duration::days(age));
            s.expiry = expires.map(|d| now + Duration::days(d));
            s.description = "seeded by the simulator".into();
            sim.seed_key(args.team, s);
        };
        seed("ci-build", KeyState::Active, 25, Some(3));
        seed("render-node-1", KeyState::Active, 10, None);
        seed("render-node-2", KeyState::Suspended, 40, Some(20));
        seed("personal-laptop", KeyState::Active, 5, None);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CommandError::usage(format_args!("--listen {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!(
        "MASV simulator at http://{addr}/v1 — team {}, owner {}",
        args.team, args.email
    );
    println!("point [masv] base_url at it; stop with Ctrl-C");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
                stop.cancel();
            });
        }
        _ => return Err(CommandError::failed("cannot install signal handlers")),
    }
    sim.serve(listener, shutdown)
        .await
        .map_err(|e| CommandError::failed(format_args!("simulator: {e}")))?;
    Ok(Exit::Success)
}
