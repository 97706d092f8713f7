//! Credentials: password hashing, access tokens (JWT), opaque single-use
//! secrets (refresh tokens, emailed links) and short codes.

pub mod passwords;
pub mod tokens;
