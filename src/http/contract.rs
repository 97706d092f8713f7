//! What the cross-cutting layers add to every operation of the document,
//! written once from the layers' own rules rather than by hand on each
//! handler (where it would drift):
//!
//! - every operation with a bearer credential can answer 401 (no or a bad
//!   credential), 403 (a person-only route called with an API key, a role
//!   the policy refuses) and 429 (the per-principal limit, with
//!   `Retry-After`); the auth routes answer 429 for the per-client limit;
//! - every JSON body can be refused as 400 `malformed_json`, 413
//!   `payload_too_large`, 415 `unsupported_media_type` or 422
//!   `invalid_body`; every path or query parameter as 400 or 422;
//! - every authenticated `POST` outside `/v1/auth` takes an
//!   `Idempotency-Key` header (400 `invalid_idempotency_key`, 409
//!   `idempotency_in_progress`, 422 `idempotency_key_reused`);
//! - an optional parameter has no `null` value (it is left out instead);
//! - a page of `T` (`Page_T`) refers to `T`'s schema instead of an inline
//!   copy, so generated clients share one item type.

use serde_json::{Map, Value, json};

use crate::domain::programs::idempotency;

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" }
            }
        }
    })
}

fn add_response(op: &mut Map<String, Value>, status: &str, description: &str) {
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(responses) = responses
        && !responses.contains_key(status)
    {
        responses.insert(status.to_owned(), problem(description));
    }
}

fn has_param(op: &Map<String, Value>, location: &str) -> bool {
    op.get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == location))
}

/// An optional header or query parameter is left out to mean "none"; it
/// has no `null` value (utoipa writes `Option<T>` as `[T, "null"]`, which
/// would make the text `null` a valid header).
fn no_null_parameters(op: &mut Map<String, Value>) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for param in params {
        let types = param["schema"]["type"].as_array().map(|types| {
            types
                .iter()
                .filter(|t| *t != "null")
                .cloned()
                .collect::<Vec<_>>()
        });
        if let Some(mut types) = types {
            param["schema"]["type"] = match types.len() {
                1 => types.remove(0),
                _ => Value::Array(types),
            };
        }
    }
}

/// Applies the rules above to one operation.
fn operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    no_null_parameters(op);
    let bearer = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    let auth_route = path.starts_with("/v1/auth/");
    if bearer {
        add_response(
            op,
            "401",
            "`unauthenticated`, `invalid_token` or `invalid_api_key`",
        );
        add_response(
            op,
            "403",
            "`forbidden`, `api_key_not_allowed` or `no_business`",
        );
        add_response(
            op,
            "429",
            "`rate_limited`: past the per-user or per-key limit (see `Retry-After`, `RateLimit`)",
        );
    }
    if auth_route {
        add_response(
            op,
            "429",
            "`rate_limited`: past the per-client limit (see `Retry-After`)",
        );
    }
    if op.contains_key("requestBody") {
        add_response(op, "400", "`malformed_json`");
        add_response(op, "413", "`payload_too_large`");
        add_response(op, "415", "`unsupported_media_type`");
        add_response(op, "422", "`invalid_body` or `validation_failed`");
    }
    if has_param(op, "path") {
        add_response(op, "400", "`invalid_path_parameter`");
    }
    if has_param(op, "query") {
        add_response(op, "400", "`invalid_query`");
        add_response(op, "422", "`validation_failed`");
    }
    let idempotent = method == "post" && bearer && !auth_route;
    if idempotent {
        let params = op
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut();
        if let Some(params) = params {
            params.push(json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "Makes the request safe to retry: sent again with the same key and body, the first answer is replayed (`Idempotent-Replayed: true`). Kept 24 hours per user or key (Stripe's semantics).",
                "schema": { "type": "string", "minLength": 1, "maxLength": idempotency::KEY_MAX, "pattern": idempotency::KEY_PATTERN }
            }));
        }
        add_response(op, "400", "`invalid_idempotency_key`");
        add_response(
            op,
            "409",
            "`idempotency_in_progress`: a request with this key is still running",
        );
        add_response(
            op,
            "422",
            "`idempotency_key_reused`: this key was used with another request",
        );
    }
}

/// `Page_T.items` refers to `T` (moved into the components if it is only
/// inline).
fn page_refs(schemas: &mut Map<String, Value>) {
    let pages: Vec<String> = schemas
        .keys()
        .filter(|k| k.starts_with("Page_"))
        .cloned()
        .collect();
    for page in pages {
        let item = page.trim_start_matches("Page_").to_owned();
        let inline = schemas[&page]["properties"]["items"]["items"].clone();
        if inline.get("$ref").is_some() {
            continue;
        }
        schemas.entry(item.clone()).or_insert(inline);
        schemas[&page]["properties"]["items"]["items"] =
            json!({ "$ref": format!("#/components/schemas/{item}") });
    }
}

/// The document the routes generate, with the rules above applied: what
/// `/openapi.json` serves and `openapi/openapi.json` holds.
pub fn apply(openapi: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(openapi).unwrap_or(Value::Null);
    {
        if let Some(paths) = doc["paths"].as_object_mut() {
            for (path, item) in paths.iter_mut() {
                let Some(item) = item.as_object_mut() else {
                    continue;
                };
                for (method, op) in item.iter_mut() {
                    if let Some(op) = op.as_object_mut() {
                        operation(path, method, op);
                    }
                }
            }
        }
        if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
            page_refs(schemas);
        }
    }
    doc
}
