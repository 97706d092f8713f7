//! Background work, driven by the database so it survives restarts.

pub mod billing;
pub mod cleanup;
pub mod outbox;
