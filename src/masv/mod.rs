//! Everything that speaks MASV: wire types, timestamps, the HTTP client.

mod answers;
pub mod client;
pub mod error;
pub mod ids;
mod port;
pub mod retry;
pub mod time;
pub mod types;

pub use answers::decode_key_list;
pub use client::{ClientStats, LoginInfo, MasvClient, MasvSettings, RetryPolicy};
pub use error::MasvError;
pub use types::{
    ApiKey, AuthResponse, CreatedApiKey, KeyAction, KeyState, NewApiKey, UpdateApiKey,
};
