//! Switchboard: the control plane of a multichannel business-automation SaaS.
//!
//! Layout: `http` (routes, thin handlers, OpenAPI), `inbound` (webhooks from
//! other systems: verify, ledger, group commit), `domain` (rules: plans,
//! sign-up, sessions, tenants, billing), `authz` (casbin), `auth`
//! (credentials), `config`/`keys` (start-up), `db` (connection, migrations,
//! the SQLite read path), `mail` (templates, the outbox), `jobs` (the one
//! durable job runner and its kinds), `crypto` (the secret vault's envelope
//! encryption), `integrations` (one client per external system),
//! `telemetry` (Prometheus metrics).
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod inbound;
pub mod integrations;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod memo;
pub mod rfc3339;
pub mod state;
pub mod telemetry;
