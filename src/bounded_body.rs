//! Reading an HTTP answer from an upstream the daemon does not trust (MASV,
//! Vault): in chunks, refused once it passes a limit, so an answer of any size
//! costs at most the limit in memory.

use bytes::{Bytes, BytesMut};

/// The body, or `None` once it passes `limit` (a declared length past it is
/// refused before anything is read).
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Bytes>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}
