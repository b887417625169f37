//! Bearer tokens: who is calling, in which role, responsible for which org node.
//!
//! Access tokens are JWTs (the `jsonwebtoken` crate): HS256 with a key id (`kid`, from the key
//! itself, so a rotated key is told apart), an issuer and an audience that name this
//! environment, and a short expiry. A token signed with another key, or for another issuer or
//! audience (another environment), is refused. The key is generated once per data dir (file
//! mode 0600) unless configured; see `diandan::server::token_secret`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use diandan_workflows::{Actor, Role};

use crate::AppError;

/// How long a development token stays valid.
pub const TOKEN_LIFETIME: time::Duration = time::Duration::hours(12);

/// How long an access token from a real sign-in stays valid (then: refresh).
pub const ACCESS_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(15);

/// The issuer and audience of this deployment's tokens (`DIANDAN_TOKEN_ISSUER` overrides the
/// issuer, e.g. per environment: staging tokens are refused in production).
pub const DEFAULT_ISSUER: &str = "diandan";
pub const AUDIENCE: &str = "diandan-api";

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub role: Role,
    /// The org node a station head or auditor is responsible for (their subtree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The signed-in account, when the user acts under another id (a WeChat account that
    /// signs in as the registered volunteer it is linked to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

impl Claims {
    pub fn actor(&self) -> Actor {
        Actor::new(self.sub.clone(), self.role)
    }

    /// The account the token was issued to (its own password, its bound phone, …).
    pub fn account_id(&self) -> &str {
        self.acc.as_deref().unwrap_or(&self.sub)
    }
}

/// The JWT as sent: the claims plus the registered ones this deployment checks.
#[derive(Debug, Serialize, Deserialize)]
struct Jwt {
    #[serde(flatten)]
    claims: Claims,
    iat: i64,
    iss: String,
    aud: String,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenSigner {
    kid: String,
    issuer: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// What a token must say (built once: it is a few sets, and every request checks one).
    validation: Validation,
    /// The key one-time codes are derived from (its own, derived from the secret).
    codes: Vec<u8>,
    /// Tokens this signer verified lately, with their claims: a phone sends the same token
    /// with every request, and checking its signature again (the header and payload decoded
    /// and parsed, the HMAC) was most of authorizing a command. Only tokens that verified are
    /// kept; expiry is checked again on every use.
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Claims>>>,
}

/// Verified tokens remembered before [`TokenSigner::verified`] starts over.
const VERIFIED_TOKENS: usize = 4096;

impl TokenSigner {
    /// A signer with this secret, for the default issuer.
    pub fn new(secret: impl Into<Vec<u8>>) -> TokenSigner {
        TokenSigner::with_issuer(secret, DEFAULT_ISSUER)
    }

    /// A signer with this secret and issuer (tokens of another issuer are refused).
    pub fn with_issuer(secret: impl Into<Vec<u8>>, issuer: &str) -> TokenSigner {
        let secret = secret.into();
        let digest = Sha256::digest(&secret);
        let kid = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked in `verify` against the caller's clock (tests move it).
        validation.validate_exp = false;
        TokenSigner {
            kid,
            issuer: issuer.to_owned(),
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            codes: Sha256::new()
                .chain_update(b"diandan one-time codes\0")
                .chain_update(&secret)
                .finalize()
                .to_vec(),
            verified: Default::default(),
        }
    }

    /// The key id tokens carry: the same in every process that shares the key.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The 8-digit one-time code of `purpose` and `id` (a love-supermarket redemption): an
    /// HMAC under this deployment's key, so the code can be shown again to its owner while only
    /// its hash is recorded, and nobody without the key can forge one.
    pub fn one_time_code(&self, purpose: &str, id: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.codes)
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        format!("{:08}", n % 100_000_000)
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let jwt = Jwt {
            claims: claims.clone(),
            iat: OffsetDateTime::now_utc().unix_timestamp(),
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
        };
        jsonwebtoken::encode(&header, &jwt, &self.encoding).expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Claims, AppError> {
        let remembered = self.remembered().get(token).cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signed(token)?;
                let mut remembered = self.remembered();
                if remembered.len() >= VERIFIED_TOKENS {
                    remembered.clear();
                }
                remembered.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.exp < now.unix_timestamp() {
            return Err(AppError::Unauthenticated("登录已过期，请重新登录".into()));
        }
        Ok(claims)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Claims>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The claims of a token signed by this key for this issuer and audience (whatever its
    /// expiry).
    fn verify_signed(&self, token: &str) -> Result<Claims, AppError> {
        let invalid = || AppError::Unauthenticated("登录凭证无效".into());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid());
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AppError::Unauthenticated(
                "登录凭证不属于本系统（签名密钥不同），请重新登录".into(),
            ));
        }
        let jwt = jsonwebtoken::decode::<Jwt>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?
            .claims;
        Ok(jwt.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn round_trip_and_tamper() {
        let signer = TokenSigner::new(b"secret".to_vec());
        let now = OffsetDateTime::now_utc();
        let claims = Claims {
            sub: "r1".into(),
            role: Role::Resident,
            node: None,
            acc: None,
            exp: (now + TOKEN_LIFETIME).unix_timestamp(),
        };
        let token = signer.issue(&claims);
        assert_eq!(signer.verify(&token, now).unwrap(), claims);
        assert_eq!(
            signer.verify(&token, now).unwrap(),
            claims,
            "verified again"
        );

        // A payload edited after signing: refused.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = serde_json::json!({
            "sub": "r1", "role": "station_head", "exp": claims.exp,
            "iat": 0, "iss": DEFAULT_ISSUER, "aud": AUDIENCE
        });
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged).unwrap());
        assert!(signer.verify(&parts.join("."), now).is_err());
        // Another environment's issuer with the same key: refused.
        let staging = TokenSigner::with_issuer(b"secret".to_vec(), "diandan-staging");
        assert!(signer.verify(&staging.issue(&claims), now).is_err());
        assert!(TokenSigner::new(b"other".to_vec())
            .verify(&token, now)
            .is_err());
        // Expired, though this very token verified a moment ago.
        assert!(signer.verify(&token, now + TOKEN_LIFETIME * 2).is_err());
        // A tampered copy of a token that verified is checked on its own.
        let at = token.len() - 10;
        let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
        assert!(signer.verify(&tampered, now).is_err());
        assert_eq!(signer.verify(&token, now).unwrap(), claims);
    }
}
