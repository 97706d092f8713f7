//! Switchboard: the control plane of a multichannel business-automation SaaS.
//!
//! Layout: `http` (routes, thin handlers, OpenAPI), `domain` (rules: plans,
//! sign-up, sessions, tenants), `authz` (casbin), `auth` (credentials),
//! `config`/`keys` (start-up), `db` (connection, migrations), `mail` and
//! `jobs` (the email outbox and its worker), `crypto` (the secret vault's
//! envelope encryption).
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
pub mod integrations;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod memo;
pub mod rfc3339;
pub mod state;
