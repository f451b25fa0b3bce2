//! The web UI: plain HTML, CSS and JavaScript compiled into the binary, served under `/ui/`. It
//! signs in with an API token and calls the same admin API as any other client, so the roles and
//! error messages are the API's own.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::{ApiError, AppState, PathParams};

/// (file name, content type, content).
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
];

/// Scripts and styles only from this origin (no inline script, so an injected value can never
/// run), API calls only to it, and never inside a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(redirect))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(asset))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The UI lives under `/ui/` so its relative links resolve.
#[utoipa::path(get, path = "/ui", tag = "meta",
    responses((status = 308, description = "To `/ui/`")))]
pub(super) async fn redirect() -> Redirect {
    Redirect::permanent("/ui/")
}

/// The web UI's page.
#[utoipa::path(get, path = "/ui/", tag = "meta",
    responses((status = 200, description = "The web UI", content_type = "text/html", body = String)))]
pub(super) async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

/// One of the web UI's files: `index.html`, `app.js`, `app.css`.
#[utoipa::path(get, path = "/ui/{file}", tag = "meta",
    params(("file" = String, Path, description = "The file's name",
        pattern = "^(index\\.html|app\\.js|app\\.css)$")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/html"), (String = "text/javascript"), (String = "text/css"))),
        (status = 404, description = "No such file", body = super::error::ErrorBody)))]
pub(super) async fn asset(PathParams(file): PathParams<String>) -> Response {
    serve(&file).unwrap_or_else(|e| e.into_response())
}

fn serve(file: &str) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::NotFound(format!("no file /ui/{file}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            // Assets change with the binary; revalidating is cheap on loopback and never stale.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
