//! Keys kept in files: created once per data dir, exclusively and atomically, mode 0600.
//!
//! A new key is written to a private temporary file, then hard-linked into place (which fails
//! if the file exists): parts of a split deployment started at the same instant on a fresh
//! data dir all end up reading the one key that won.

use std::io::Write as _;
use std::path::Path;

/// The key in `path`, or a new one from `generate` written there. A key shorter than
/// `min_len` bytes is refused with a message saying what to do.
pub fn load_or_create(
    path: &Path,
    min_len: usize,
    generate: impl FnOnce() -> Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let short = |path: &Path| {
        std::io::Error::other(format!(
            "{} is shorter than {min_len} bytes: remove it to generate a new key, or fix it",
            path.display()
        ))
    };
    if let Ok(secret) = std::fs::read(path) {
        return if secret.len() >= min_len {
            Ok(secret)
        } else {
            Err(short(path))
        };
    }
    let secret = generate();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let staging = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&staging)?;
        file.write_all(&secret)?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&staging, path);
    let _ = std::fs::remove_file(&staging);
    match linked {
        Ok(()) => Ok(secret),
        // Another process won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let secret = std::fs::read(path)?;
            if secret.len() >= min_len {
                Ok(secret)
            } else {
                Err(short(path))
            }
        }
        Err(e) => Err(e),
    }
}

/// The key checkpoints of the log are signed with: `DIANDAN_AUDIT_KEY_FILE`, else `audit.key`
/// in the data dir (32 bytes, an Ed25519 seed), created on first use.
///
/// Whoever can write the event store and also read this key can sign a rewritten history;
/// a deployment that wants those powers apart keeps the key elsewhere (the variable), and
/// auditors keep copies of checkpoints outside the system, which no key can rewrite.
pub fn audit_key(data_dir: &Path) -> std::io::Result<ed25519_dalek::SigningKey> {
    let path = audit_key_path(data_dir);
    let seed = load_or_create(&path, 32, || {
        diandan_audit::checkpoint::generate_key()
            .to_bytes()
            .to_vec()
    })?;
    signing_key(&path, seed)
}

fn audit_key_path(data_dir: &Path) -> std::path::PathBuf {
    std::env::var_os("DIANDAN_AUDIT_KEY_FILE")
        .filter(|p| !p.is_empty())
        .map_or_else(|| data_dir.join("audit.key"), Into::into)
}

/// The audit key, only if it exists: what maintenance commands use, so that one run where the
/// real key is elsewhere (`DIANDAN_AUDIT_KEY_FILE` not set in this shell) cannot create a
/// second key and sign with it.
pub fn existing_audit_key(data_dir: &Path) -> std::io::Result<ed25519_dalek::SigningKey> {
    let path = audit_key_path(data_dir);
    let seed = std::fs::read(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "no audit key at {} ({e}): is DIANDAN_AUDIT_KEY_FILE set as for the running system? \
                 (diandan audit verify also takes the public key as --key)",
                path.display()
            ),
        )
    })?;
    signing_key(&path, seed)
}

fn signing_key(path: &Path, seed: Vec<u8>) -> std::io::Result<ed25519_dalek::SigningKey> {
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| std::io::Error::other(format!("{} is not a 32-byte key", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}
