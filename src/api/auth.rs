//! Bearer-token authentication and roles: each handler states the role it needs by calling
//! `Caller::require`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::domain::Role;

/// A new token: 256 random bits (from the OS generator, through UUID v4), shown once.
pub fn new_token() -> String {
    format!(
        "sw_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The holder of a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                needed: role,
                has: self.role,
            })
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let token = state
            .store
            .token_by_hash(&hash_token(presented.trim()))
            .await?
            .filter(|t| t.is_valid_at(state.clock.now()))
            .ok_or(ApiError::Unauthorized)?;
        state.limits.admit(token.id, state.clock.now())?;
        Ok(Caller {
            name: token.name,
            role: token.role,
        })
    }
}

/// Requests per token per minute: a fixed one-minute window per token, kept in memory (each
/// instance limits what reaches it).
#[derive(Clone, Default)]
pub struct RateLimits {
    per_minute: u32,
    /// Token id -> (window start, requests in it).
    windows: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, (i64, u32)>>>,
}

impl RateLimits {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            ..Default::default()
        }
    }

    fn admit(&self, token: i64, now: crate::domain::Timestamp) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        const MINUTE: i64 = 60_000_000;
        let now = now.as_micros();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = windows.entry(token).or_insert((now, 0));
        if now - *start >= MINUTE {
            (*start, *count) = (now, 0);
        }
        if *count >= self.per_minute {
            let wait = (*start + MINUTE - now).max(0) as u64;
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.div_ceil(1_000_000).max(1),
            });
        }
        *count += 1;
        Ok(())
    }
}
