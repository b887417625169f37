//! 个人信息 — residents' personal data sealed with a key of their own (crypto-shredding).
//!
//! A resident's address, contact number (full, in the vault) and its mask (in events and read
//! models) are stored as *sealed* text: ChaCha20-Poly1305 under a 32-byte key kept for that
//! resident alone (`resident_keys` in the vault file), with the resident and the field as
//! associated data, so a sealed value cannot be moved to another resident or field:
//!
//! ```text
//! pii:v1:<base64 (standard, padded) of 12-byte nonce || ciphertext || 16-byte tag>
//! AAD = "diandan.pii.v1\n" || resident id || "\n" || field
//! ```
//!
//! Values are sealed before they are first written anywhere (the event's append, the vault)
//! and opened only where they are shown. Forgetting a resident (`diandan residents forget`,
//! `POST /api/v1/residents/{id}/forget`) destroys the key: every copy — events, read models,
//! backups, the bus — becomes unreadable at once, while hashes (over the ciphertext),
//! statistics and every other fact stay as they were.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "pii:v1:";

/// What a view shows for a value whose resident was forgotten.
pub const ERASED: &str = "（已删除）";

/// A resident's key.
pub type ResidentKey = [u8; 32];

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The fields sealed, by the name their associated data carries.
pub mod field {
    pub const ADDRESS: &str = "address";
    pub const PHONE: &str = "phone";
    pub const PHONE_MASKED: &str = "phone_masked";
}

/// A fresh key from the operating system's randomness.
pub fn new_key() -> ResidentKey {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the operating system has randomness");
    key
}

fn aad(resident: &str, field: &str) -> Vec<u8> {
    format!("diandan.pii.v1\n{resident}\n{field}").into_bytes()
}

/// `plain` sealed for `resident`'s `field`. The empty string stays empty (nothing to hide).
pub fn seal(key: &ResidentKey, resident: &str, field: &str, plain: &str) -> String {
    if plain.is_empty() {
        return String::new();
    }
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).expect("the operating system has randomness");
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(resident, field);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: &aad,
            },
        )
        .expect("sealing in memory cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    format!("{SEALED_PREFIX}{}", B64.encode(bytes))
}

/// Whether `text` is a sealed value (rather than data written before sealing, or empty).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

/// The plain text of a value: itself when it is not sealed; opened with `key` when it is;
/// `None` when it cannot be (the key was destroyed, or the value is not this field's).
pub fn open(key: Option<&ResidentKey>, resident: &str, field: &str, text: &str) -> Option<String> {
    let Some(encoded) = text.strip_prefix(SEALED_PREFIX) else {
        return Some(text.to_owned());
    };
    let bytes = B64.decode(encoded).ok()?;
    if bytes.len() < 12 + 16 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(12);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key?));
    let aad = aad(resident, field);
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

/// [`open`], showing [`ERASED`] for what cannot be opened.
pub fn show(key: Option<&ResidentKey>, resident: &str, field: &str, text: &str) -> String {
    open(key, resident, field, text).unwrap_or_else(|| ERASED.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_resident_and_field() {
        let key = new_key();
        let sealed = seal(&key, "r-1", field::ADDRESS, "永福巷 12 号");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("永福巷"));
        assert_eq!(
            open(Some(&key), "r-1", field::ADDRESS, &sealed).as_deref(),
            Some("永福巷 12 号")
        );
        assert_ne!(
            sealed,
            seal(&key, "r-1", field::ADDRESS, "永福巷 12 号"),
            "fresh nonce"
        );
        assert_eq!(open(Some(&new_key()), "r-1", field::ADDRESS, &sealed), None);
        assert_eq!(open(Some(&key), "r-2", field::ADDRESS, &sealed), None);
        assert_eq!(open(Some(&key), "r-1", field::PHONE, &sealed), None);
        assert_eq!(open(None, "r-1", field::ADDRESS, &sealed), None);
        assert_eq!(show(None, "r-1", field::ADDRESS, &sealed), ERASED);
        // Data written before sealing reads as itself; empty stays empty.
        assert_eq!(
            open(None, "r-1", field::ADDRESS, "旧地址").as_deref(),
            Some("旧地址")
        );
        assert_eq!(seal(&key, "r-1", field::ADDRESS, ""), "");
        let mut damaged = sealed.clone();
        damaged.truncate(sealed.len() - 4);
        assert_eq!(open(Some(&key), "r-1", field::ADDRESS, &damaged), None);
    }
}
