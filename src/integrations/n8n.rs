//! The n8n client: the automation layer's public REST API (`/api/v1`, key
//! in `X-N8N-API-KEY`; n8n docs: "n8n public REST API"), for the workflows,
//! credentials and tags Switchboard provisions per business and channel,
//! and the production webhooks of its workflows (`{webhook base}/webhook/
//! {path}`). Base URL, key, webhook base and template ids are
//! configuration (`n8n.*`), so tests run this code against a real n8n.
//!
//! Failures map to problem details: n8n unreachable or answering 5xx →
//! 502 `automation_unreachable`; n8n refusing a request → 502
//! `automation_error` with its status and message. Removing what is
//! already gone (404) is not a failure.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::config::N8nConfig;
use crate::error::Error;

/// A configured n8n client (cheap to clone).
#[derive(Clone)]
pub struct N8nApi {
    http: reqwest::Client,
    base: String,
    webhook_base: String,
    key: SecretString,
}

/// An object n8n made: its id.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    /// n8n's id.
    pub id: String,
}

/// A workflow as n8n returns it: its id, whether it is active, and the
/// rest as JSON (nodes, connections, settings, …).
#[derive(Debug, Clone, Deserialize)]
pub struct Workflow {
    /// n8n's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether its triggers are live.
    #[serde(default)]
    pub active: bool,
    /// Its nodes (n8n's node objects).
    #[serde(default)]
    pub nodes: Vec<Value>,
    /// Its connections, by source node name.
    #[serde(default)]
    pub connections: Value,
    /// Its settings.
    #[serde(default)]
    pub settings: Value,
}

fn unreachable(e: impl std::fmt::Display) -> Error {
    tracing::warn!(error = %e, "n8n request failed");
    Error::new(
        StatusCode::BAD_GATEWAY,
        "automation_unreachable",
        "The automation server could not be reached",
    )
    .with_detail("Try again shortly.")
}

fn refused(status: reqwest::StatusCode, body: &str) -> Error {
    let message: String = body.chars().take(300).collect();
    tracing::warn!(status = status.as_u16(), %message, "n8n refused a request");
    Error::new(
        StatusCode::BAD_GATEWAY,
        "automation_error",
        "The automation server refused the request",
    )
    .with_detail(message)
    .with("n8n_status", status.as_u16())
}

/// The tag that marks a business's workflows: `sb` and the business id in
/// unpadded base64url, 24 characters (n8n's longest tag name).
pub fn business_tag(business_id: Uuid) -> String {
    format!(
        "sb{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(business_id.as_bytes())
    )
}

/// Node fields n8n's public API accepts on create (its `node` schema has
/// `additionalProperties: false`).
const NODE_FIELDS: [&str; 16] = [
    "id",
    "name",
    "webhookId",
    "disabled",
    "notesInFlow",
    "notes",
    "type",
    "typeVersion",
    "executeOnce",
    "alwaysOutputData",
    "retryOnFail",
    "maxTries",
    "waitBetweenTries",
    "onError",
    "position",
    "parameters",
];

/// Workflow settings n8n's public API accepts (`workflowSettings`,
/// `additionalProperties: false`).
const SETTINGS_FIELDS: [&str; 12] = [
    "saveExecutionProgress",
    "saveManualExecutions",
    "saveDataErrorExecution",
    "saveDataSuccessExecution",
    "executionTimeout",
    "errorWorkflow",
    "timezone",
    "executionOrder",
    "callerPolicy",
    "callerIds",
    "timeSavedPerExecution",
    "availableInMCP",
];

/// A credential a copied workflow's nodes use: n8n's credential type, id
/// and name (`node.credentials[type] = {id, name}`).
pub struct CredentialRef<'a> {
    /// e.g. `telegramApi`.
    pub kind: &'a str,
    /// n8n's id.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// A copy of `template` to create as a new workflow named `name`: every
/// node gets a fresh id, and a fresh `webhookId` where it has one (two
/// workflows must not share a webhook path); every node that uses a
/// credential of `credential.kind` uses `credential` instead; `static_data`
/// becomes the copy's static data (read in a Code node with
/// `$getWorkflowStaticData('global')`). Fields the create call does not
/// take (ids, timestamps, tags, versions) are left out.
pub fn duplicate(
    template: &Workflow,
    name: &str,
    credential: &CredentialRef<'_>,
    static_data: Value,
) -> Value {
    let nodes: Vec<Value> = template
        .nodes
        .iter()
        .map(|node| {
            let mut out = Map::new();
            if let Some(fields) = node.as_object() {
                for key in NODE_FIELDS {
                    if let Some(v) = fields.get(key) {
                        out.insert(key.into(), v.clone());
                    }
                }
                let mut creds = fields
                    .get("credentials")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if creds.contains_key(credential.kind) || uses(node, credential.kind) {
                    creds.insert(
                        credential.kind.into(),
                        json!({ "id": credential.id, "name": credential.name }),
                    );
                }
                if !creds.is_empty() {
                    out.insert("credentials".into(), Value::Object(creds));
                }
            }
            out.insert("id".into(), json!(Uuid::new_v4()));
            if out.contains_key("webhookId") {
                out.insert("webhookId".into(), json!(Uuid::new_v4()));
            }
            Value::Object(out)
        })
        .collect();
    let mut settings = Map::new();
    if let Some(s) = template.settings.as_object() {
        for key in SETTINGS_FIELDS {
            if let Some(v) = s.get(key) {
                settings.insert(key.into(), v.clone());
            }
        }
    }
    json!({
        "name": name,
        "nodes": nodes,
        "connections": template.connections,
        "settings": settings,
        "staticData": static_data,
    })
}

/// Whether `node` is one whose type takes a credential of `kind` without
/// the template naming one yet: Telegram nodes take `telegramApi`.
fn uses(node: &Value, kind: &str) -> bool {
    let ty = node.get("type").and_then(Value::as_str).unwrap_or("");
    kind == "telegramApi"
        && (ty == "n8n-nodes-base.telegram" || ty == "n8n-nodes-base.telegramTrigger")
}

impl N8nApi {
    /// A client for `config.base_url`.
    pub fn new(config: &N8nConfig) -> Result<N8nApi, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        let base = config.base_url.trim_end_matches('/').to_owned();
        Ok(N8nApi {
            http,
            webhook_base: config
                .webhook_base
                .as_deref()
                .map(|b| b.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| base.clone()),
            base,
            key: config.api_key.clone(),
        })
    }

    /// Where n8n serves production webhooks (`{base}/webhook/{path}`),
    /// without a trailing slash.
    pub fn webhook_base(&self) -> &str {
        &self.webhook_base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("X-N8N-API-KEY", self.key.expose_secret())
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let res = req.send().await.map_err(unreachable)?;
        match res.status() {
            s if s.is_success() => res.json().await.map_err(unreachable),
            s if s.is_server_error() => Err(unreachable(format!("n8n answered {s}"))),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// A call whose 404 means done (removing what is gone).
    async fn gone_ok(&self, req: reqwest::RequestBuilder) -> Result<(), Error> {
        let res = req.send().await.map_err(unreachable)?;
        match res.status() {
            s if s.is_success() => Ok(()),
            reqwest::StatusCode::NOT_FOUND => Ok(()),
            s if s.is_server_error() => Err(unreachable(format!("n8n answered {s}"))),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// Workflow `id` (`GET /workflows/{id}`), or `None` when n8n has none.
    pub async fn workflow(&self, id: &str) -> Result<Option<Workflow>, Error> {
        let res = self
            .request(reqwest::Method::GET, &format!("/workflows/{id}"))
            .send()
            .await
            .map_err(unreachable)?;
        match res.status() {
            s if s.is_success() => res.json().await.map(Some).map_err(unreachable),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_server_error() => Err(unreachable(format!("n8n answered {s}"))),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// Workflows named exactly `name` (`GET /workflows?name=`), first page.
    pub async fn workflows_named(&self, name: &str) -> Result<Vec<Workflow>, Error> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<Workflow>,
        }
        let page: Page = self
            .json(
                self.request(reqwest::Method::GET, "/workflows")
                    .query(&[("name", name), ("excludePinnedData", "true")]),
            )
            .await?;
        Ok(page.data.into_iter().filter(|w| w.name == name).collect())
    }

    /// Creates workflow `body` (`POST /workflows`; see [`duplicate`]).
    pub async fn create_workflow(&self, body: &Value) -> Result<Created, Error> {
        self.json(self.request(reqwest::Method::POST, "/workflows").json(body))
            .await
    }

    /// Activates workflow `id` (`POST /workflows/{id}/activate`): n8n
    /// registers its triggers (a Telegram Trigger sets the bot's webhook).
    pub async fn activate(&self, id: &str) -> Result<(), Error> {
        self.json::<Value>(
            self.request(reqwest::Method::POST, &format!("/workflows/{id}/activate")),
        )
        .await
        .map(|_| ())
    }

    /// Deactivates workflow `id` (`POST /workflows/{id}/deactivate`); a
    /// missing workflow is inactive.
    pub async fn deactivate(&self, id: &str) -> Result<(), Error> {
        self.gone_ok(self.request(
            reqwest::Method::POST,
            &format!("/workflows/{id}/deactivate"),
        ))
        .await
    }

    /// Deletes workflow `id` (`DELETE /workflows/{id}`); a missing one is fine.
    pub async fn delete_workflow(&self, id: &str) -> Result<(), Error> {
        self.gone_ok(self.request(reqwest::Method::DELETE, &format!("/workflows/{id}")))
            .await
    }

    /// The id of tag `name`, created if n8n has none by that name
    /// (`GET /tags`, `POST /tags`).
    pub async fn ensure_tag(&self, name: &str) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct Tag {
            id: String,
            name: String,
        }
        #[derive(Deserialize)]
        struct Page {
            data: Vec<Tag>,
            #[serde(rename = "nextCursor", default)]
            next_cursor: Option<String>,
        }
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self
                .request(reqwest::Method::GET, "/tags")
                .query(&[("limit", "250")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let page: Page = self.json(req).await?;
            if let Some(t) = page.data.into_iter().find(|t| t.name == name) {
                return Ok(t.id);
            }
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => break,
            }
        }
        let tag: Created = self
            .json(
                self.request(reqwest::Method::POST, "/tags")
                    .json(&json!({ "name": name })),
            )
            .await?;
        Ok(tag.id)
    }

    /// Sets workflow `id`'s tags (`PUT /workflows/{id}/tags`).
    pub async fn set_tags(&self, id: &str, tag_ids: &[String]) -> Result<(), Error> {
        let body: Vec<Value> = tag_ids.iter().map(|t| json!({ "id": t })).collect();
        self.json::<Value>(
            self.request(reqwest::Method::PUT, &format!("/workflows/{id}/tags"))
                .json(&body),
        )
        .await
        .map(|_| ())
    }

    /// The fields credential type `kind` takes (`GET /credentials/schema/
    /// {kind}`: a JSON schema); `None` when n8n has no such type.
    pub async fn credential_schema(&self, kind: &str) -> Result<Option<Value>, Error> {
        let res = self
            .request(reqwest::Method::GET, &format!("/credentials/schema/{kind}"))
            .send()
            .await
            .map_err(unreachable)?;
        match res.status() {
            s if s.is_success() => res.json().await.map(Some).map_err(unreachable),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_server_error() => Err(unreachable(format!("n8n answered {s}"))),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// Creates credential `name` of type `kind` with `data` (`POST
    /// /credentials`; n8n encrypts it at rest).
    pub async fn create_credential(
        &self,
        name: &str,
        kind: &str,
        data: Value,
    ) -> Result<Created, Error> {
        self.json(
            self.request(reqwest::Method::POST, "/credentials")
                .json(&json!({ "name": name, "type": kind, "data": data })),
        )
        .await
    }

    /// Deletes credential `id` (`DELETE /credentials/{id}`); a missing
    /// one is fine.
    pub async fn delete_credential(&self, id: &str) -> Result<(), Error> {
        self.gone_ok(self.request(reqwest::Method::DELETE, &format!("/credentials/{id}")))
            .await
    }

    /// Posts `body` to the production webhook at `path` (`{webhook base}/
    /// webhook/{path}`), as an active workflow's Webhook node receives it.
    pub async fn call_webhook(&self, path: &str, body: &Value) -> Result<(), Error> {
        let path = path.trim_start_matches('/');
        let res = self
            .http
            .post(format!("{}/webhook/{path}", self.webhook_base))
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        match res.status() {
            s if s.is_success() => Ok(()),
            s if s.is_server_error() => Err(unreachable(format!("n8n webhook answered {s}"))),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }
}

/// The path of `workflow`'s first Webhook node (`parameters.path`), where
/// its production URL listens.
pub fn webhook_path(workflow: &Workflow) -> Option<String> {
    workflow.nodes.iter().find_map(|n| {
        (n.get("type").and_then(Value::as_str) == Some("n8n-nodes-base.webhook")
            && n.get("disabled").and_then(Value::as_bool) != Some(true))
        .then(|| n.pointer("/parameters/path").and_then(Value::as_str))
        .flatten()
        .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Workflow {
        serde_json::from_value(json!({
            "id": "tpl",
            "name": "Telegram ingress",
            "active": false,
            "versionId": "v1",
            "nodes": [
                {"id": "a", "name": "Trigger", "type": "n8n-nodes-base.telegramTrigger",
                 "typeVersion": 1.2, "position": [0, 0], "webhookId": "w-1",
                 "parameters": {"updates": ["message"]}, "createdAt": "x"},
                {"id": "b", "name": "Reply", "type": "n8n-nodes-base.telegram",
                 "typeVersion": 1.2, "position": [200, 0], "parameters": {},
                 "credentials": {"telegramApi": {"id": "old", "name": "Old"}}},
                {"id": "c", "name": "Log", "type": "n8n-nodes-base.noOp",
                 "typeVersion": 1, "position": [400, 0], "parameters": {}}
            ],
            "connections": {"Trigger": {"main": [[{"node": "Reply", "type": "main", "index": 0}]]}},
            "settings": {"executionOrder": "v1", "binaryMode": "x"},
        }))
        .unwrap()
    }

    #[test]
    fn a_duplicate_has_fresh_ids_and_the_new_credential() {
        let copy = duplicate(
            &template(),
            "copy",
            &CredentialRef {
                kind: "telegramApi",
                id: "new",
                name: "New",
            },
            json!({"switchboard": {"channel_id": "c1"}}),
        );
        let nodes = copy["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        for n in nodes {
            assert!(!["a", "b", "c"].contains(&n["id"].as_str().unwrap()));
            assert!(n.get("createdAt").is_none());
        }
        assert_ne!(nodes[0]["webhookId"], "w-1");
        assert!(nodes[0]["webhookId"].is_string());
        assert_eq!(nodes[0]["credentials"]["telegramApi"]["id"], "new");
        assert_eq!(nodes[1]["credentials"]["telegramApi"]["id"], "new");
        assert!(nodes[2].get("credentials").is_none());
        assert!(nodes[2].get("webhookId").is_none());
        assert_eq!(copy["settings"], json!({"executionOrder": "v1"}));
        assert_eq!(copy["staticData"]["switchboard"]["channel_id"], "c1");
        assert!(copy.get("id").is_none() && copy.get("versionId").is_none());
        assert_eq!(
            copy["connections"]["Trigger"]["main"][0][0]["node"],
            "Reply"
        );
    }

    #[test]
    fn business_tags_fit_n8n() {
        let t = business_tag(Uuid::now_v7());
        assert_eq!(t.len(), 24);
        assert!(t.starts_with("sb"));
    }
}
