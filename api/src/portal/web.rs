//! The reference portal page: plain HTML, CSS and JavaScript modules embedded in the binary
//! and served from `/`. The page talks only to the public HTTP API.
//!
//! Every page route serves the same document; the script picks the screen from the path.
//! The Content-Security-Policy allows scripts and styles from this origin only (no inline
//! script), pictures from this origin or https (firm logos live on the firm's CDN), and
//! no framing. `Referrer-Policy: no-referrer` is set on every response by the router, so
//! an invite token in `/invite/{token}` never leaves in a `Referer`.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' https: data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../web/index.html");

/// `(path, content type, body)` of each asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/assets/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/api.js"),
    ),
    (
        "/assets/format.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/format.js"),
    ),
    (
        "/assets/portal.css",
        "text/css; charset=utf-8",
        include_str!("../../web/portal.css"),
    ),
];

/// The paths a person opens: the invite link, login, the two tabs and the Wallet.
pub const PAGES: &[&str] = &[
    "/",
    "/login",
    "/dashboard",
    "/invoices",
    "/invite/{token}",
    "/wallet/{checkout_id}",
];

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn page() -> Response {
    secured(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response())
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for path in PAGES {
        router = router.route(path, get(page));
    }
    for (path, content_type, body) in ASSETS {
        router = router.route(
            path,
            get(move || async move {
                secured(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
            }),
        );
    }
    router
}
