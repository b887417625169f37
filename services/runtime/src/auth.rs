//! Bearer tokens: who is calling, in which role, responsible for which org node.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(claims))`, signed with a secret
//! that stays on the server. Only the development login issues them so far; WeChat login
//! (code2Session) will issue the same tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use diandan_workflows::{Actor, Role};

use crate::AppError;

/// How long a token stays valid.
pub const TOKEN_LIFETIME: time::Duration = time::Duration::hours(12);

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub role: Role,
    /// The org node a station head or auditor is responsible for (their subtree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

impl Claims {
    pub fn actor(&self) -> Actor {
        Actor::new(self.sub.clone(), self.role)
    }
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl TokenSigner {
    pub fn new(secret: impl Into<Vec<u8>>) -> TokenSigner {
        TokenSigner {
            secret: secret.into(),
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(payload);
        mac
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let signature = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Claims, AppError> {
        let invalid = || AppError::Unauthenticated("登录凭证无效".into());
        let (payload, signature) = token.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        self.mac(&payload)
            .verify_slice(&signature)
            .map_err(|_| invalid())?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if claims.exp < now.unix_timestamp() {
            return Err(AppError::Unauthenticated("登录已过期，请重新登录".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let signer = TokenSigner::new(b"secret".to_vec());
        let now = OffsetDateTime::now_utc();
        let claims = Claims {
            sub: "r1".into(),
            role: Role::Resident,
            node: None,
            exp: (now + TOKEN_LIFETIME).unix_timestamp(),
        };
        let token = signer.issue(&claims);
        assert_eq!(signer.verify(&token, now).unwrap(), claims);

        let forged = Claims {
            role: Role::StationHead,
            ..claims.clone()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let signature = token.split_once('.').unwrap().1;
        assert!(signer
            .verify(&format!("{forged_payload}.{signature}"), now)
            .is_err());
        assert!(TokenSigner::new(b"other".to_vec())
            .verify(&token, now)
            .is_err());
        assert!(signer.verify(&token, now + TOKEN_LIFETIME * 2).is_err());
    }
}
