//! Programs as users of the API (SPEC §7 "API keys"): a business's keys
//! ([`api_keys`]) and the replay of `POST`s sent with an `Idempotency-Key`
//! ([`idempotency`]).

pub mod api_keys;
pub mod idempotency;
