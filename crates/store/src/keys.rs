//! API keys: generation, and the HMAC-SHA256 digests that are all the store keeps of them.
//!
//! A key reads `tdm-<8 hex id><40 hex secret>`: the id finds the record, and the digest of the
//! whole key under the server secret (32 random bytes in `<data dir>/server.secret`, mode 0600) is
//! compared in constant time. HMAC rather than a password KDF: keys are 160 random bits, not
//! guessable passwords, and every request checks one.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Result, StoreError};

type HmacSha256 = Hmac<Sha256>;

/// What the store knows of a key (never the key itself).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// `key_` + the 8 hex digits after `tdm-`.
    pub id: String,
    pub name: String,
    /// For lists: `tdm-1a2b3c4d…` (the public id part only).
    pub hint: String,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
    /// May manage keys and read usage over HTTP.
    pub admin: bool,
    /// Requests per minute; `None`: no limit.
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute.
    pub tpm: Option<u64>,
    /// Dollars; requests stop when `spent` reaches it.
    pub budget: Option<f64>,
    /// Dollars recorded against the key so far.
    pub spent: f64,
    /// The key's moderation policy (`none`, `input`, `output` or `both`, optionally `:block` or
    /// `:flag`), over the server's; `None`: the server's.
    pub moderation: Option<String>,
    /// The project the key belongs to; every key made since projects came in has one.
    pub project_id: Option<String>,
}

/// A change to a key: `Some(None)` clears a limit.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub budget: Option<Option<f64>>,
    pub moderation: Option<Option<String>>,
}

/// The server secret that digests keys.
pub struct KeyRing {
    secret: [u8; 32],
}

const PREFIX: &str = "tdm-";

impl KeyRing {
    /// A ring over a secret kept elsewhere (PostgreSQL's `server_secret`, shared by replicas).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// A fresh random secret (what a new store keeps).
    pub fn random_secret() -> Result<[u8; 32]> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(secret)
    }

    /// Reads `<dir>/server.secret`, creating it (random, owner-only) on first use.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("server.secret");
        match std::fs::read(&path) {
            Ok(b) if b.len() == 32 => {
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&b);
                Ok(Self { secret })
            }
            Ok(b) => Err(StoreError::Corrupt(format!(
                "{} holds {} bytes, not 32",
                path.display(),
                b.len()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                getrandom::getrandom(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                match opts.open(&path) {
                    Ok(mut f) => {
                        f.write_all(&secret)?;
                        f.sync_all()?;
                        Ok(Self { secret })
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::open(dir),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    pub fn digest(&self, key: &str) -> Vec<u8> {
        let mut m = self.mac();
        m.update(key.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of `key`'s digest with a stored one.
    pub fn verify(&self, key: &str, digest: &[u8]) -> bool {
        let mut m = self.mac();
        m.update(key.as_bytes());
        m.verify_slice(digest).is_ok()
    }
}

/// What a new key is allowed.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub admin: bool,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget: Option<f64>,
    pub moderation: Option<String>,
    /// An existing, active project; `None`: a new project of its own, named after the key.
    pub project_id: Option<String>,
}

/// Creates a key: stores its record and digest, returns both the record and the key (the only
/// time the key exists outside the caller's hands).
pub fn create_key(store: &dyn crate::Store, ring: &KeyRing, k: NewKey, now: u64) -> Result<(KeyRecord, String)> {
    let (id, key) = generate_key()?;
    let project_id = match k.project_id {
        Some(p) => match store.project(&p)? {
            None => return Err(StoreError::Invalid(format!("no project {p}"))),
            Some(p) if p.archived_at.is_some() => {
                return Err(StoreError::Invalid(format!("project {} is archived", p.id)))
            }
            Some(p) => p.id,
        },
        None => {
            let name = if k.name.is_empty() { id.clone() } else { k.name.clone() };
            let p = crate::ProjectRecord::new(name, now)?;
            store.insert_project(&p)?;
            p.id
        }
    };
    let rec = KeyRecord {
        id,
        name: k.name,
        hint: hint(&key),
        created_at: now,
        revoked_at: None,
        admin: k.admin,
        rpm: k.rpm,
        tpm: k.tpm,
        budget: k.budget,
        spent: 0.0,
        moderation: k.moderation,
        project_id: Some(project_id),
    };
    store.insert_key(&rec, &ring.digest(&key))?;
    Ok((rec, key))
}

/// A fresh key and its record id.
pub fn generate_key() -> Result<(String, String)> {
    let mut b = [0u8; 24];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok((format!("key_{}", &hex[..8]), format!("{PREFIX}{hex}")))
}

/// The record id a presented key claims, if it has the shape of one.
pub fn key_id(key: &str) -> Option<String> {
    let rest = key.strip_prefix(PREFIX)?;
    (rest.len() == 48 && rest.bytes().all(|c| c.is_ascii_hexdigit())).then(|| format!("key_{}", &rest[..8]))
}

/// What lists show of a key.
pub fn hint(key: &str) -> String {
    format!("{}…", &key[..PREFIX.len() + 8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_digest_and_verify_only_under_the_same_secret() {
        let d = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(d.path()).unwrap();
        let (id, key) = generate_key().unwrap();
        assert_eq!(key_id(&key).as_deref(), Some(id.as_str()));
        assert!(key.starts_with("tdm-") && key.len() == 52);
        let dg = ring.digest(&key);
        assert!(ring.verify(&key, &dg));
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push(if key.ends_with('0') { '1' } else { '0' });
        assert!(!ring.verify(&wrong, &dg));
        // The secret persists: a reopened ring verifies the same digest.
        assert!(KeyRing::open(d.path()).unwrap().verify(&key, &dg));
        let other = tempfile::tempdir().unwrap();
        assert!(!KeyRing::open(other.path()).unwrap().verify(&key, &dg));
        assert_eq!(key_id("tdm-short"), None);
        assert_eq!(key_id("sk-0123"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join("server.secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
