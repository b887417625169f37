//! Signed checkpoints: a system's Ed25519 signature over the size and Merkle root of its log.
//!
//! A checkpoint is JSON (field order as below; unknown fields are refused):
//!
//! ```json
//! {"version":1,"log_id":"<64 hex>","tree_size":1234,"position":1234,
//!  "root":"<64 hex>","signed_at_ms":1796000000000,"signature":"<base64>"}
//! ```
//!
//! - `log_id` is SHA-256 of the system's 32-byte Ed25519 public key, hex: a checkpoint names
//!   the system that signed it, so one from another system is told apart before its signature;
//! - `tree_size` is how many events the tree covers (leaves 0..tree_size in log order),
//!   `position` the log position of the last of them;
//! - `root` is `MTH` of those events ([`crate::merkle`]);
//! - `signature` is Ed25519 (RFC 8032, standard base64 of the 64 bytes) over the UTF-8 text
//!
//! ```text
//! diandan-checkpoint/v1
//! log <log_id>
//! size <tree_size>
//! position <position>
//! root <root>
//! at <signed_at_ms>
//! ```
//!
//! (each line ends with `\n`, numbers in decimal).
//!
//! Public keys are written as the standard base64 of the 32 key bytes.

use base64::Engine as _;
use diandan_store::chain::{from_hex, to_hex, Hash};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The checkpoint format this module writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// A signed statement of the log's size and root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub log_id: String,
    pub tree_size: u64,
    pub position: u64,
    pub root: String,
    pub signed_at_ms: i64,
    pub signature: String,
}

/// Why a checkpoint (or a key) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint format {0} is unknown (this build reads version {CHECKPOINT_VERSION})")]
    Version(u32),
    #[error("the checkpoint is from another system (log {found}; this key's log is {expected})")]
    OtherSystem { found: String, expected: String },
    #[error("the checkpoint's root is not 64 hexadecimal digits")]
    Root,
    #[error("the checkpoint's signature is not 64 bytes of base64")]
    SignatureEncoding,
    #[error("the checkpoint's signature does not verify with this public key")]
    Signature,
    #[error("the public key is not 32 bytes of base64 Ed25519: {0}")]
    Key(String),
}

/// The id of the log a public key signs for: SHA-256 of the key's bytes, hex.
pub fn log_id(key: &VerifyingKey) -> String {
    to_hex(&Sha256::digest(key.as_bytes()).into())
}

/// A public key as written for people and files.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// A public key from its written form (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, CheckpointError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| CheckpointError::Key(e.to_string()))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| CheckpointError::Key(format!("{} bytes", b.len())))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| CheckpointError::Key(e.to_string()))
}

/// A fresh signing key from the operating system's randomness.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the operating system has randomness");
    SigningKey::from_bytes(&seed)
}

impl Checkpoint {
    /// Signs the tree of `tree_size` events ending at `position` with root `root`.
    pub fn sign(
        key: &SigningKey,
        tree_size: u64,
        position: u64,
        root: &Hash,
        signed_at_ms: i64,
    ) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            log_id: log_id(&key.verifying_key()),
            tree_size,
            position,
            root: to_hex(root),
            signed_at_ms,
            signature: String::new(),
        };
        let signature = key.sign(checkpoint.signed_text().as_bytes());
        checkpoint.signature = B64.encode(signature.to_bytes());
        checkpoint
    }

    /// The text the signature is over.
    pub fn signed_text(&self) -> String {
        format!(
            "diandan-checkpoint/v1\nlog {}\nsize {}\nposition {}\nroot {}\nat {}\n",
            self.log_id, self.tree_size, self.position, self.root, self.signed_at_ms
        )
    }

    /// The root, once the checkpoint is known to be well formed.
    pub fn root_hash(&self) -> Result<Hash, CheckpointError> {
        from_hex(&self.root).ok_or(CheckpointError::Root)
    }

    /// Checks that `key`'s system signed this checkpoint; returns its root.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Hash, CheckpointError> {
        if self.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Version(self.version));
        }
        let expected = log_id(key);
        if self.log_id != expected {
            return Err(CheckpointError::OtherSystem {
                found: self.log_id.clone(),
                expected,
            });
        }
        let root = self.root_hash()?;
        let signature: [u8; 64] = B64
            .decode(&self.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(CheckpointError::SignatureEncoding)?;
        key.verify(
            self.signed_text().as_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| CheckpointError::Signature)?;
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_content() {
        let key = generate_key();
        let public = key.verifying_key();
        let checkpoint = Checkpoint::sign(&key, 10, 12, &[5; 32], 1_796_000_000_000);
        assert_eq!(checkpoint.verify(&public), Ok([5; 32]));
        let json = serde_json::to_string(&checkpoint).unwrap();
        let back: Checkpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify(&public), Ok([5; 32]));
        assert_eq!(
            parse_public_key(&encode_public_key(&public)).unwrap(),
            public
        );

        let mut edited = checkpoint.clone();
        edited.tree_size = 11;
        assert_eq!(edited.verify(&public), Err(CheckpointError::Signature));
        let other = generate_key();
        assert!(matches!(
            checkpoint.verify(&other.verifying_key()),
            Err(CheckpointError::OtherSystem { .. })
        ));
        // Another system's checkpoint relabelled as ours still fails its signature.
        let mut foreign = Checkpoint::sign(&other, 10, 12, &[5; 32], 1);
        foreign.log_id = checkpoint.log_id.clone();
        assert_eq!(foreign.verify(&public), Err(CheckpointError::Signature));
        assert!(parse_public_key("not a key").is_err());
        assert!(parse_public_key(&B64.encode([1u8; 31])).is_err());
        assert!(serde_json::from_str::<Checkpoint>(&json.replace("{", "{\"x\":1,")).is_err());
    }
}
