//! The rotation engine: plan what is due, then carry it out crash-safely.
//!
//! It speaks its own model and owns its ports; the adapters (`masv`, `vault`,
//! `store`) implement them and nothing here imports them or the config
//! (docs/design.md, section 8).
//!
//! * [`admission`] — which listed keys can be managed at all (names are untrusted);
//! * [`planner`] — pure functions from what the daemon sees to what is due and
//!   what is safe, including what to do with an unfinished rotation;
//! * [`executor`] — carries out a lineage's actions: `rotation`, `resume` and
//!   `retirement`, each a flat sequence of steps through one runner (`step`);
//! * [`sweep`] — one pass over every team: list once, plan, execute concurrently;
//! * [`report`] — what a sweep did: each team's report as it finishes, and the totals;
//! * [`ports`] — the key API, the secret store and the record store, with the
//!   error kinds the engine acts on;
//! * [`key`], [`secret`], [`policy`], [`model`], [`records`], [`audit`] — the
//!   engine's model: keys, secrets, the policy, rotation and retirement records,
//!   the changes a step writes and the audit vocabulary;
//! * [`marker`], [`failpoints`] — the create marker, crash points.

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
mod promotion;
pub mod records;
pub mod report;
mod resume;
mod retirement;
mod rotation;
pub mod secret;
mod step;
pub mod sweep;
mod takeover;

pub use failpoints::{Boundary, Failpoints};
pub use model::LineageId;
pub use policy::Policy;
pub use report::{Scope, SweepReport, SweepTotals};
pub use sweep::{Engine, ManagedTeam, SweepMode};
pub use takeover::HandOverReport;

#[cfg(test)]
mod tests;
