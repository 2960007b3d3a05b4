//! Gateway webhooks: the only way a charge's outcome enters Portico. Signed with
//! HMAC-SHA256 over `"{timestamp}.{body}"`, sent as `Portico-Signature: t=..,v1=<hex>`;
//! older than five minutes is refused (replay protection). Deliveries are idempotent: an
//! outcome already recorded is acknowledged again.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use portico_domain::error::DomainError;
use portico_domain::ids::{InvoiceId, PaymentId};
use portico_domain::invoice::{Invoice, PaymentStatus};
use portico_domain::streams::StreamId;
use portico_store::Metadata;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::commands::load;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub const SIGNATURE_HEADER: &str = "portico-signature";
pub const TOLERANCE_SECONDS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value a gateway sends with `body` at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => signature = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (timestamp, signature) else {
        return false;
    };
    (now - t).abs() <= TOLERANCE_SECONDS && mac(secret, t, body).verify_slice(&sig).is_ok()
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    /// `charge.succeeded` or `charge.failed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reference: String,
    pub payment_id: String,
    pub invoice_id: String,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAck {
    /// `recorded`, or `duplicate` for an outcome already recorded.
    pub status: &'static str,
    pub position: i64,
}

#[utoipa::path(post, path = "/v1/webhooks/sandbox", tag = "webhooks",
    request_body = WebhookEvent,
    params(("Portico-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    responses((status = 200, body = WebhookAck), (status = 401), (status = 404), (status = 409)))]
pub async fn sandbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ApiJson<WebhookAck>> {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    if !verify(
        &state.settings.webhook_secret,
        signature,
        &body,
        state.clock.now().timestamp(),
    ) {
        return Err(ApiError::Unauthorized);
    }
    let event: WebhookEvent =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let invoice_id: InvoiceId = event
        .invoice_id
        .parse()
        .map_err(|_| ApiError::NotFound("invoice"))?;
    let payment_id: PaymentId = event
        .payment_id
        .parse()
        .map_err(|_| ApiError::NotFound("payment"))?;
    let succeeded = match event.kind.as_str() {
        "charge.succeeded" => true,
        "charge.failed" => false,
        other => {
            return Err(ApiError::validation(format!(
                "unknown webhook type `{other}`"
            )))
        }
    };
    let stream = StreamId::invoice(invoice_id);
    let firm_id = load::<Invoice>(&state, &stream)
        .await?
        .issued
        .map(|i| i.firm_id)
        .ok_or(ApiError::NotFound("invoice"))?;
    let metadata = Metadata::new(Some(firm_id), format!("gateway:{}", state.gateway.name()));
    let reason = event
        .reason
        .clone()
        .unwrap_or_else(|| "declined by the gateway".to_owned());
    let result = crate::commands::run(&state, &metadata, std::slice::from_ref(&stream), |loaded| {
        let invoice = loaded.replay::<Invoice>(&stream);
        if succeeded {
            invoice.settle(payment_id)
        } else {
            invoice.fail(payment_id, reason.clone())
        }
    })
    .await;
    match result {
        Ok(committed) => Ok(ApiJson(WebhookAck {
            status: "recorded",
            position: committed.last_position(),
        })),
        Err(ApiError::Conflict { .. }) => {
            // Already decided: acknowledge a repeat of the same outcome, refuse a contrary one.
            let invoice = load::<Invoice>(&state, &stream).await?;
            let status = invoice.payments.get(&payment_id).map(|p| p.status);
            match (status, succeeded) {
                (Some(PaymentStatus::Settled), true) | (Some(PaymentStatus::Failed), false) => {
                    Ok(ApiJson(WebhookAck {
                        status: "duplicate",
                        position: 0,
                    }))
                }
                _ => Err(DomainError::PaymentNotPending(payment_id).into()),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time_window() {
        let header = sign(b"secret", 1_000, b"{\"a\":1}");
        assert!(verify(b"secret", &header, b"{\"a\":1}", 1_000));
        assert!(verify(
            b"secret",
            &header,
            b"{\"a\":1}",
            1_000 + TOLERANCE_SECONDS
        ));
        assert!(!verify(b"secret", &header, b"{\"a\":2}", 1_000));
        assert!(!verify(b"other", &header, b"{\"a\":1}", 1_000));
        assert!(!verify(
            b"secret",
            &header,
            b"{\"a\":1}",
            1_000 + TOLERANCE_SECONDS + 1
        ));
        assert!(!verify(b"secret", "t=1000", b"{\"a\":1}", 1_000));
        assert!(!verify(b"secret", "garbage", b"{\"a\":1}", 1_000));
    }
}
