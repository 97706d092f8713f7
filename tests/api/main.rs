//! The integration suite: one binary; every test starts the real app on a
//! random port against its own database (a fresh SQLite file, or a fresh
//! PostgreSQL database when `DATABASE_URL` points at PostgreSQL) and talks
//! HTTP to it.

mod common;

mod connect;

mod api_keys;
mod audit;
mod billing;
mod browser;
mod cli;
mod email;
mod events;

mod flow;
mod grants;
mod hardening;
mod hostile;
mod idempotency;
mod isolation;
mod jobs;
mod localstripe;
mod oauth;
mod openapi;
mod ops;
mod overload;
mod purchases;
mod race;
mod rate_limit;
mod reader;
mod restart;
mod roles;
mod secrets;
mod storm;
mod stripe_fake;
mod telegram;
mod telegram_fake;
mod waha_fake;
mod whatsapp;
