//! The OpenAPI 3.1 contract at `GET /openapi.json`, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they answer with.
//!
//! Adding a route: annotate its handler with `#[utoipa::path(method, path = "...", tag = "...",
//! params(...), request_body = ..., responses((status = 200, body = ...)))]` and list the handler
//! in `paths(...)` below. Only the success answer and the route's own errors (404, 409, 502) need
//! stating: `Conventions` adds the bearer scheme and the errors every admin route shares. The
//! integration test `openapi::every_registered_route_is_in_the_document` names any route missing.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    AppState, access, audit, decisions, error, health, ingest, kpis, metrics, operations, privacy,
    ui,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "syncwarden",
        description = "Admin API of syncwarden: keeps a CRM and an ERP in sync, logs every field \
                       change, and lets people steer the agent. Every error has one shape, \
                       `ErrorBody`. Admin routes need `Authorization: Bearer TOKEN` of a role \
                       (viewer < approver < admin) created with `syncwarden token create`. \
                       No text in a body or a query may hold a NUL character (U+0000): 422."
    ),
    paths(
        health::healthz,
        health::readyz,
        ingest::ingest,
        metrics::metrics,
        audit::events,
        audit::events_csv,
        audit::series,
        operations::conflicts,
        operations::resolve,
        operations::dead_letters,
        operations::redrive,
        operations::runs,
        operations::endpoints,
        operations::switch,
        operations::policies,
        operations::change_policy,
        decisions::findings,
        decisions::finding,
        decisions::acknowledge,
        decisions::resolve,
        decisions::silences,
        decisions::add_silence,
        decisions::actions,
        decisions::actions_csv,
        decisions::approve,
        decisions::action,
        decisions::reject,
        decisions::undo,
        kpis::kpis,
        access::me,
        access::tokens,
        privacy::erase,
        document,
        ui::redirect,
        ui::index,
        ui::asset,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "health", description = "Liveness and readiness, no token"),
        (name = "ingest", description = "Field events from other integration platforms"),
        (name = "audit", description = "The field-level event log and metric series"),
        (name = "operations", description = "Conflicts, dead letters, runs, endpoint switches, policies"),
        (name = "decisions", description = "Findings, silences and the agent's merge proposals"),
        (name = "meta", description = "This document and the web UI"),
    )
)]
pub struct ApiDoc;

/// The document of this instance, serialised once: the code's, with the erasure body naming the
/// endpoints whose personal fields are configured here.
pub fn document_for(privacy: &crate::privacy::PrivacySettings) -> String {
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut() {
        components.schemas.insert(
            "ErasureRequest".to_string(),
            crate::privacy::request_schema(&privacy.personal_fields),
        );
    }
    doc.to_json()
        .unwrap_or_else(|e| format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"{e}\"}}}}"))
}

pub fn router(privacy: &crate::privacy::PrivacySettings) -> Router<AppState> {
    let doc: Arc<str> = document_for(privacy).into();
    Router::new().route("/openapi.json", get(move || document(doc.clone())))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn document(doc: Arc<str>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
}

/// The parts every admin route shares, added here so a new route's annotation states only what
/// is its own.
struct Conventions;

const BEARER: &str = "bearer";

/// Routes behind a token of a role, the deadline and the rate limit (see `api::router`).
fn is_admin_route(path: &str) -> bool {
    (path.starts_with("/v1/") && path != "/v1/events") || path == "/metrics"
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: `syncwarden token create --role R --name N`",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let admin = is_admin_route(path);
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_shared_errors(op, admin);
            }
        }
    }
}

fn add_shared_errors(op: &mut Operation, admin: bool) {
    let has_input =
        op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut errors = vec![("500", "Internal error (the details are in the server log)")];
    if admin {
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        errors.extend([
            ("401", "Missing, wrong, expired or revoked bearer token"),
            ("403", "The token's role is below the one this route needs"),
            (
                "429",
                "Too many requests for this token this minute (see Retry-After)",
            ),
            (
                "503",
                "The database is unavailable, or the request ran past its deadline",
            ),
        ]);
        if has_input {
            errors.push((
                "422",
                "A parameter or body member is wrong; `field` names it",
            ));
        }
        if op.request_body.is_some() {
            errors.push(("413", "The request body is larger than the admin limit"));
        }
        let paged = op
            .parameters
            .iter()
            .flatten()
            .any(|p| matches!(p, RefOr::T(p) if p.name == "after"));
        if paged {
            errors.push((
                "400",
                "A paging parameter (`limit` or `after`) does not read; `field` names it",
            ));
        }
    }
    for (status, description) in errors {
        if !op.responses.responses.contains_key(status) {
            op.responses
                .responses
                .insert(status.to_string(), error_response(description).into());
        }
    }
}

/// An answer in the one error shape.
pub(super) fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
