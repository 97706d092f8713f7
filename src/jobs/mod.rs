//! Background work, driven by the database so it survives restarts.

pub mod cleanup;
pub mod outbox;
