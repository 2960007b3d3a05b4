//! Every error leaves as RFC 9457 `application/problem+json` with a stable `type` URI.
//! Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portico_domain::error::{DomainError, InviteProblem};
use portico_projections::ProjectionError;
use portico_store::command::CommandError;
use portico_store::StoreError;
use serde::Serialize;
use serde_json::{json, Value};

pub const PROBLEM_BASE: &str = "https://portico.dev/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Validation { detail: String },
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("authentication required")]
    Unauthorized,
    #[error("the email or password is incorrect")]
    LoginFailed,
    #[error("too many failed attempts; try again later")]
    LoginBackoff { retry_after: u64 },
    #[error("this request needs the X-CSRF-Token header of your session")]
    Csrf,
    #[error("this invite link {0}")]
    InviteGone(InviteProblem),
    #[error("{detail}")]
    Conflict { kind: &'static str, detail: String },
    #[error("some invoices cannot be paid as asked")]
    PaymentConflict { invoices: Vec<Value> },
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInProgress,
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the service is temporarily unavailable")]
    Unavailable,
    #[error("an internal error occurred")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(flatten)]
    extensions: Value,
}

impl ApiError {
    pub fn validation(detail: impl Into<String>) -> Self {
        ApiError::Validation {
            detail: detail.into(),
        }
    }

    pub fn conflict(kind: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            kind,
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            LoginFailed => (StatusCode::UNAUTHORIZED, "login-failed", "Login failed"),
            LoginBackoff { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "login-backoff",
                "Too many attempts",
            ),
            Csrf => (StatusCode::FORBIDDEN, "csrf", "CSRF token missing or wrong"),
            InviteGone(_) => (
                StatusCode::GONE,
                "invite-gone",
                "Invite link no longer valid",
            ),
            Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PaymentConflict { .. } => (
                StatusCode::CONFLICT,
                "payment-conflict",
                "Invoices cannot be paid",
            ),
            IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Request in progress",
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let detail = match &self {
            ApiError::Internal(internal) => {
                tracing::error!(error = %internal, "internal error");
                "an internal error occurred".to_owned()
            }
            other => other.to_string(),
        };
        let extensions = match &self {
            ApiError::PaymentConflict { invoices } => json!({ "invoices": invoices }),
            ApiError::Conflict { kind, .. } => json!({ "reason": kind }),
            ApiError::InviteGone(p) => json!({ "reason": invite_reason(*p) }),
            _ => json!({}),
        };
        let body = Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail,
            extensions,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match &self {
            ApiError::LoginBackoff { retry_after } => Some(*retry_after),
            ApiError::Unavailable => Some(2),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn invite_reason(p: InviteProblem) -> &'static str {
    match p {
        InviteProblem::Expired => "expired",
        InviteProblem::Revoked => "revoked",
        InviteProblem::Used => "used",
        InviteProblem::Superseded => "superseded",
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        use portico_domain::error::Entity;
        match e {
            DomainError::NotFound(entity) => ApiError::NotFound(match entity {
                Entity::Firm => "firm",
                Entity::Client => "client",
                Entity::Contact => "contact",
                Entity::Invite => "invite",
                Entity::Project => "project",
                Entity::TeamMember => "team member",
                Entity::Invoice => "invoice",
                Entity::Payment => "payment",
            }),
            DomainError::Invite(p) => ApiError::InviteGone(p),
            DomainError::SubmissionRejected(rejections) => ApiError::PaymentConflict {
                invoices: rejections
                    .iter()
                    .map(|r| json!({ "invoice_id": r.invoice_id, "reason": r.problem.to_string() }))
                    .collect(),
            },
            e @ (DomainError::Invalid(_)
            | DomainError::Money(_)
            | DomainError::DueBeforeIssue
            | DomainError::NotPositive
            | DomainError::EmptySubmission
            | DomainError::DuplicateInvoiceInSubmission(_)
            | DomainError::MixedCurrencies
            | DomainError::RefundExceedsPayment { .. }) => ApiError::validation(e.to_string()),
            e @ DomainError::DuplicateInvoiceNumber(_) => {
                ApiError::conflict("duplicate-invoice-number", e.to_string())
            }
            e @ DomainError::DuplicateEmail => ApiError::conflict("duplicate-email", e.to_string()),
            e @ DomainError::AlreadyExists(_) => {
                ApiError::conflict("already-exists", e.to_string())
            }
            e => ApiError::conflict("state", e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable,
            StoreError::Conflict { .. } => ApiError::conflict(
                "concurrent-update",
                "someone else changed this at the same time; retry",
            ),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::Conflict { .. } => ApiError::conflict(
                "concurrent-update",
                "someone else changed this at the same time; retry",
            ),
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Store(s) => s.into(),
            ProjectionError::Db(d) => d.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if portico_store::error::is_unavailable(&e) {
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
