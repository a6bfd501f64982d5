//! The rotation engine: plan what is due, then carry it out crash-safely.
//!
//! * [`admission`] — which listed keys can be managed at all (names are untrusted);
//! * [`planner`] — a pure function from what the daemon sees to what is due;
//! * [`executor`] — carries out a lineage's actions: [`rotation`], [`resume`] and
//!   [`retirement`], each a flat sequence of steps through one runner ([`step`]);
//! * [`sweep`] — one pass over every team: list once, plan, execute concurrently;
//! * [`records`] — the state tables the executor writes (with their audit rows);
//! * [`ports`] — the narrow traits over MASV and Vault the engine depends on;
//! * [`policy`] — one team's rotation policy, as the config resolved it;
//! * [`model`], [`marker`], [`failpoints`] — records, the create marker, crash points.

pub mod admission;
pub mod audit;
pub mod executor;
pub mod failpoints;
pub mod key;
pub mod marker;
pub mod model;
pub mod planner;
pub mod policy;
pub mod ports;
pub mod records;
mod resume;
mod retirement;
mod rotation;
pub mod secret;
mod step;
pub mod sweep;

pub use failpoints::{Boundary, Failpoints};
pub use model::LineageId;
pub use policy::Policy;
pub use sweep::{Engine, ManagedTeam, SweepMode, SweepReport};

#[cfg(test)]
mod tests;
