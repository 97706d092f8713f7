//! sea-orm entities of Switchboard's database: one module per table, plus the
//! enumerations stored in text columns (`enums`). The schema itself is owned by
//! the `migration` crate; these structs mirror it and carry no behaviour beyond
//! what sea-orm derives. Rules about the data live in the root crate's `domain`.

pub mod api_key;
pub mod audit_event;
pub mod billing;
pub mod business;
pub mod channel;
pub mod channel_connection;
pub mod company;
pub mod connected_account;
pub mod email;
pub mod enums;
pub mod event;
pub mod idempotency_key;
pub mod inbound_event;
pub mod job;
pub mod login_throttle;
pub mod n8n_object;
pub mod oauth;
pub mod one_time_token;
pub mod purchase;
pub mod refresh_token;
pub mod registration;
pub mod secret;
pub mod user;
pub mod webhook;
