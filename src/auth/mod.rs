//! Credentials: password hashing, access tokens (JWT), opaque single-use
//! secrets (refresh tokens, emailed links) and short codes; whether a
//! token's session is still alive.

pub mod passwords;
pub mod sessions;
pub mod tokens;
