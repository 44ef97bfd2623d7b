//! Secrets at rest: XChaCha20-Poly1305 under the master key; random tokens; digests for lookup.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// Signs approval links; derived from the master key so every node checks the same links.
    signing: [u8; 32],
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl MasterKey {
    /// From `ALERTFLOW_MASTER_KEY` (64 hex digits or base64 of 32 bytes) when given, else from
    /// `DATA_DIR/master.key`, created on first start with mode 0600.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<MasterKey> {
        let bytes = match configured {
            Some(text) => decode_key(text.trim()).ok_or_else(|| {
                anyhow::anyhow!("master key: expected 64 hex digits or base64 of 32 bytes")
            })?,
            None => {
                let path = data_dir.join("master.key");
                if path.exists() {
                    let text = std::fs::read_to_string(&path)?;
                    decode_key(text.trim()).ok_or_else(|| {
                        anyhow::anyhow!("{}: not a 32-byte hex key", path.display())
                    })?
                } else {
                    let mut key = [0u8; 32];
                    OsRng.fill_bytes(&mut key);
                    write_private(&path, &hex::encode(key))?;
                    key.to_vec()
                }
            }
        };
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("master key must be 32 bytes"))?;
        let signing = Sha256::new()
            .chain_update(b"alertflow link signing key\0")
            .chain_update(&bytes)
            .finalize()
            .into();
        Ok(MasterKey { cipher, signing })
    }

    /// `payload.signature`, both base64url: a link that proves the server made it.
    pub fn sign(&self, payload: &[u8]) -> String {
        use hmac::Mac;
        let mut mac =
            <HmacSha256 as hmac::Mac>::new_from_slice(&self.signing).expect("any key length");
        mac.update(payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// The payload of a token made by `sign`, when its signature holds.
    pub fn verify(&self, token: &str) -> Option<Vec<u8>> {
        use hmac::Mac;
        let (payload, signature) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac =
            <HmacSha256 as hmac::Mac>::new_from_slice(&self.signing).expect("any key length");
        mac.update(&payload);
        mac.verify_slice(&signature).ok()?;
        Some(payload)
    }

    pub fn encrypt(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        // Encryption with a fresh nonce cannot fail for in-memory buffers.
        out.extend(self.cipher.encrypt(&nonce, plain).expect("encrypt"));
        out
    }

    pub fn decrypt(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            anyhow::bail!("sealed value too short");
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), body)
            .map_err(|_| anyhow::anyhow!("cannot decrypt: wrong master key?"))
    }
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())?;
    (bytes.len() == 32).then_some(bytes)
}

/// A new random secret with a recognisable prefix (`afk_` for API keys, `aft_` for tokens).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Whether `password` matches an argon2 hash made by `hash_password`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Written aside and renamed into place: a full disk must not leave a truncated key that
    // the next start would refuse.
    let partial = path.with_extension("partial");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        f.write_all(contents.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsf"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn seals_and_opens() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load(None, dir.path()).unwrap();
        let sealed = key.encrypt(b"afk_secret");
        assert!(!sealed.windows(10).any(|w| w == b"afk_secret"));
        assert_eq!(key.decrypt(&sealed).unwrap(), b"afk_secret");
        // the same file gives the same key after a restart
        let again = MasterKey::load(None, dir.path()).unwrap();
        assert_eq!(again.decrypt(&sealed).unwrap(), b"afk_secret");
        let other = MasterKey::load(Some(&"11".repeat(32)), dir.path()).unwrap();
        assert!(other.decrypt(&sealed).is_err());
    }
}
