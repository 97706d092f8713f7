//! Background work, driven by the database so it survives restarts.

pub mod outbox;
