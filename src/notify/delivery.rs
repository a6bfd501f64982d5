//! The background task that POSTs queued events one by one: each body is
//! serialized once, signed if a secret is set, and retried on 5xx answers and
//! transport errors with exponential backoff; a 4xx is the receiver refusing
//! the event and is not retried. What finally could not be delivered is
//! logged and counted, and the task goes on with the next event: nothing here
//! reaches back into a sweep.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::event::Event;
use super::signature::HEADER;
use super::stats::Counters;
use super::NotifySettings;

/// Where and how events go.
pub(super) struct Webhook {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub settings: NotifySettings,
    pub counters: Arc<Counters>,
}

impl Webhook {
    /// Delivers every event `rx` yields until the queue is closed and empty.
    pub async fn deliver_all(self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            match self.deliver(&event).await {
                Ok(attempt) => {
                    Counters::bump(&self.counters.delivered);
                    debug!(event = %event.kind, attempt, "webhook event delivered");
                }
                Err(why) => {
                    Counters::bump(&self.counters.failed);
                    warn!(
                        event = %event.kind,
                        team_id = event.team_id.as_deref().unwrap_or("-"),
                        key_name = event.key_name.as_deref().unwrap_or("-"),
                        error = %why,
                        "webhook event not delivered"
                    );
                }
            }
        }
    }

    /// POSTs one event; Ok(the attempt that worked) or the last reason it did not.
    async fn deliver(&self, event: &Event) -> Result<u32, String> {
        let body = event.body();
        let signature = self.settings.signer.as_ref().map(|s| s.sign(&body));
        let attempts = self.settings.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                let factor = 2u32.saturating_pow(attempt - 2);
                tokio::time::sleep(self.settings.backoff.saturating_mul(factor)).await;
            }
            Counters::bump(&self.counters.attempts);
            match self.post(&body, signature.as_deref()).await {
                Ok(r) if r.status().is_success() => return Ok(attempt),
                Ok(r) if r.status().is_server_error() => {
                    last = format!("HTTP {} after {attempt} attempt(s)", r.status().as_u16());
                }
                Ok(r) => {
                    return Err(format!(
                        "HTTP {} (not retried: only 5xx and transport errors are)",
                        r.status().as_u16()
                    ))
                }
                // without_url: the URL may carry a token.
                Err(e) => last = format!("{} after {attempt} attempt(s)", e.without_url()),
            }
        }
        Err(last)
    }

    async fn post(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header(HEADER, signature);
        }
        request.send().await
    }
}
