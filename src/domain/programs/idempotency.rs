//! Idempotent `POST`s (filled in with the idempotency layer).
