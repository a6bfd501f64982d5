//! The MASV fault matrix: every fault class at every step of a rotation's life,
//! one at a time; each must be survived (invariants intact after the faulted
//! sweep and after the next ones) with the right exit code. Consumers read the
//! lineage's Vault path and call MASV with its key throughout each case: none
//! may ever be refused, whatever the fault.

use std::time::Duration as StdDuration;

use chrono::Duration;
use masv_key_rotator::exit::Exit;
use masv_key_rotator::masv::KeyState;
use masv_key_rotator::simulator::{Fault, FaultKind};
use reqwest::Method;

use crate::helpers::consumers::{Rig, Tally, QUICK_PACE};
use crate::helpers::vault::TestVault;
use crate::helpers::world::World;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    List,
    Create,
    Activate,
    Verify,
    Deactivate,
    Delete,
}

impl Step {
    fn target(self) -> (Method, &'static str) {
        match self {
            Step::List => (Method::GET, "/api_keys"),
            Step::Create => (Method::POST, "/api_keys"),
            Step::Activate => (Method::PUT, "/active"),
            Step::Verify => (Method::GET, "/packages"),
            Step::Deactivate => (Method::PUT, "/inactive"),
            Step::Delete => (Method::DELETE, "/api_keys/"),
        }
    }
}

fn faults() -> Vec<(&'static str, FaultKind)> {
    vec![
        ("503", FaultKind::Status(503)),
        (
            "429 + Retry-After",
            FaultKind::RateLimited {
                retry_after: Some(StdDuration::from_secs(0)),
            },
        ),
        ("429", FaultKind::RateLimited { retry_after: None }),
        ("401", FaultKind::Status(401)),
        (
            "timeout",
            FaultKind::Latency(StdDuration::from_millis(1500)),
        ),
        ("reset", FaultKind::DropConnection),
        ("lost response", FaultKind::LoseResponse),
        ("malformed JSON", FaultKind::MalformedBody),
    ]
}

/// The exit code the faulted sweep must end with.
fn expected(step: Step, fault: &FaultKind) -> Exit {
    match (step, fault) {
        // create is never retried once it may have reached MASV: the sweep reports a
        // failure and the next one reconciles by the marker
        (
            Step::Create,
            FaultKind::Status(503)
            | FaultKind::Latency(_)
            | FaultKind::DropConnection
            | FaultKind::LoseResponse
            | FaultKind::MalformedBody,
        ) => Exit::ActionFailed,
        // a list whose body cannot be read skips the team this sweep
        (Step::List, FaultKind::MalformedBody) => Exit::ActionFailed,
        // a 401 to the X-API-KEY check says the new key does not work: the rotation
        // stops short of retiring anything and the check is repeated next sweep
        (Step::Verify, FaultKind::Status(401)) => Exit::ActionFailed,
        // everything else is retried (or, for a 2xx with a bad body on a call whose body
        // is not needed, simply succeeds)
        _ => Exit::Success,
    }
}

#[tokio::test]
async fn every_masv_fault_at_every_step_is_survived() {
    let mut vault = Some(TestVault::start().await);
    let mut cases = 0;
    let mut consumed = Tally::default();
    for step in [
        Step::List,
        Step::Create,
        Step::Activate,
        Step::Verify,
        Step::Deactivate,
        Step::Delete,
    ] {
        for (name, fault) in faults() {
            let label = format!("{step:?}/{name}");
            let w = World::with_vault(vault.take().unwrap().renamed(&format!("fm{cases}"))).await;
            *w.masv_timeout.lock().unwrap() = StdDuration::from_secs(1);
            let old = w.seed("ci-build", Duration::days(10), Some(Duration::days(2)));
            let consumers = Rig::new(&w, QUICK_PACE)
                .await
                .reading_vault(&["ci-build".to_string()], 2);
            // bring the lineage to the step
            match step {
                Step::Deactivate => {
                    w.sweep().await;
                    w.clock.advance(Duration::hours(2));
                }
                Step::Delete => {
                    w.sweep().await;
                    w.clock.advance(Duration::hours(2));
                    w.sweep().await;
                    w.clock.advance(Duration::days(8));
                }
                _ => {}
            }
            let (method, path) = step.target();
            let mut f = Fault::new(fault.clone()).on(method).path(path);
            if step == Step::Create && fault == FaultKind::LoseResponse {
                f = Fault::new(FaultKind::LoseCreateResponse);
            }
            w.sim.inject(f);
            let r = w.sweep().await;
            assert_eq!(
                r.exit(),
                expected(step, &fault),
                "{label}: {:?} {:?}",
                r.outcomes,
                r.errors
            );
            w.assert_safe_after_crash().await;
            // the following sweeps settle everything
            for _ in 0..3 {
                let r = w.sweep().await;
                assert_eq!(
                    r.exit(),
                    Exit::Success,
                    "{label} (settling): {:?} {:?}",
                    r.outcomes,
                    r.errors
                );
            }
            w.assert_invariants().await;
            let current = w
                .current("ci-build")
                .await
                .unwrap_or_else(|| panic!("{label}: nothing stored"));
            assert_eq!(
                w.state(&current.secret.key_id),
                Some(KeyState::Active),
                "{label}"
            );
            match step {
                Step::Deactivate => {
                    assert_eq!(w.state(&old.id), Some(KeyState::Inactive), "{label}")
                }
                Step::Delete => assert_eq!(w.state(&old.id), None, "{label}"),
                _ => {}
            }
            consumed.add(consumers.stop().await.in_case(&label));
            cases += 1;
            let World { vault: v, .. } = w;
            vault = Some(v);
        }
    }
    println!("MASV fault matrix: {cases} cases survived");
    println!("MASV fault matrix consumers: {consumed}");
    assert_eq!(cases, 48);
    consumed.assert_no_refusals("MASV fault matrix");
}
