//! Everything that speaks MASV: wire types, timestamps, the HTTP client.

pub mod client;
pub mod error;
pub mod ids;
pub mod retry;
pub mod time;
pub mod types;

pub use client::{decode_key_list, ClientStats, LoginInfo, MasvClient, MasvSettings, RetryPolicy};
pub use error::MasvError;
pub use types::{
    ApiKey, AuthResponse, CreatedApiKey, KeyAction, KeyState, NewApiKey, UpdateApiKey,
};
