//! The secret vault: connector credentials and receiver secrets kept in the store, encrypted with
//! AES-256-GCM under a master key that never touches the store (from `SYNCWARDEN_MASTER_KEY` or
//! `vault.key_file`). A secret field of the configuration set to `vault:NAME` is replaced at
//! start-up by the secret NAME.

use std::path::PathBuf;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// The environment variable holding the master key (base64 of 32 bytes).
pub const KEY_ENV: &str = "SYNCWARDEN_MASTER_KEY";

/// A configuration value `vault:NAME` stands for the secret NAME.
pub const REFERENCE_PREFIX: &str = "vault:";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no master key: set {KEY_ENV} (base64 of 32 random bytes, e.g. from `syncwarden secret generate-key`) or vault.key_file"
    )]
    NoKey,
    #[error("the master key from {from} is not base64 of 32 bytes: {problem}")]
    BadKey { from: String, problem: String },
    #[error("cannot read the key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret `{0}` is not in the vault (add it with `syncwarden secret set {0}`)")]
    Missing(String),
    #[error(
        "secret `{name}` was sealed with master key {stored}, but the master key given is {current}"
    )]
    WrongKey {
        name: String,
        stored: String,
        current: String,
    },
    #[error("secret `{0}` does not decrypt with the master key (damaged or tampered with)")]
    Undecryptable(String),
    #[error("secret names are 1-128 letters, digits, `_`, `-` or `.`; `{0}` is not")]
    BadName(String),
    #[error("{field}: {source}")]
    Field {
        field: String,
        #[source]
        source: Box<VaultError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultSettings {
    /// A file holding the master key (base64 of 32 bytes); used when SYNCWARDEN_MASTER_KEY is unset.
    pub key_file: PathBuf,
}

/// A secret as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// Fingerprint of the master key that sealed it.
    pub key_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What `secret list` shows: never the value.
#[derive(Debug, Clone, Serialize)]
pub struct SecretInfo {
    pub name: String,
    pub key_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The AES-256-GCM master key and its fingerprint.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// The key from `SYNCWARDEN_MASTER_KEY`, else from `vault.key_file`.
    pub fn load(settings: &VaultSettings) -> Result<Self, VaultError> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return Self::from_base64(&text, KEY_ENV);
        }
        if settings.key_file.as_os_str().is_empty() {
            return Err(VaultError::NoKey);
        }
        Self::from_file(&settings.key_file)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self, VaultError> {
        let text = std::fs::read_to_string(path).map_err(|source| VaultError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_base64(&text, &path.display().to_string())
    }

    /// `from` names where the text came from, for the error.
    pub fn from_base64(text: &str, from: &str) -> Result<Self, VaultError> {
        let bad = |problem: String| VaultError::BadKey {
            from: from.to_string(),
            problem,
        };
        let bytes = BASE64.decode(text.trim()).map_err(|e| bad(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(bad(format!("it decodes to {} bytes", bytes.len())));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let id = hex::encode(&Sha256::digest(&bytes)[..8]);
        Ok(Self { cipher, id })
    }

    /// A new random key, base64.
    pub fn generate() -> String {
        BASE64.encode(Key::<Aes256Gcm>::generate())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `value` under a fresh random nonce; the name is bound in as associated data.
    pub fn seal(
        &self,
        name: &str,
        value: &str,
        now: Timestamp,
    ) -> Result<SealedSecret, VaultError> {
        let nonce = Nonce::generate();
        let payload = Payload {
            msg: value.as_bytes(),
            aad: name.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| VaultError::Undecryptable(name.to_string()))?;
        Ok(SealedSecret {
            name: name.to_string(),
            nonce: nonce.to_vec(),
            ciphertext,
            key_id: self.id.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    pub fn open(&self, sealed: &SealedSecret) -> Result<SecretString, VaultError> {
        if sealed.key_id != self.id {
            return Err(VaultError::WrongKey {
                name: sealed.name.clone(),
                stored: sealed.key_id.clone(),
                current: self.id.clone(),
            });
        }
        let undecryptable = || VaultError::Undecryptable(sealed.name.clone());
        let nonce = Nonce::try_from(sealed.nonce.as_slice()).map_err(|_| undecryptable())?;
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: sealed.name.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(&nonce, payload)
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| undecryptable())
    }
}

/// The vault over a store.
pub struct Vault {
    store: Arc<dyn Store>,
    key: MasterKey,
}

fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadName(name.to_string()))
    }
}

impl Vault {
    pub fn new(store: Arc<dyn Store>, key: MasterKey) -> Self {
        Self { store, key }
    }

    /// Stores (or replaces) a secret.
    pub async fn set(&self, name: &str, value: &str, now: Timestamp) -> Result<(), VaultError> {
        check_name(name)?;
        let mut sealed = self.key.seal(name, value, now)?;
        if let Some(old) = self.store.secret(name).await? {
            sealed.created_at = old.created_at;
        }
        self.store.put_secrets(&[sealed]).await?;
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<SecretString, VaultError> {
        let sealed = self
            .store
            .secret(name)
            .await?
            .ok_or_else(|| VaultError::Missing(name.to_string()))?;
        self.key.open(&sealed)
    }

    pub async fn list(&self) -> Result<Vec<SecretInfo>, VaultError> {
        Ok(list(self.store.as_ref()).await?)
    }

    /// Re-encrypts every secret under `new` in one transaction: all of them or none.
    pub async fn rotate(&self, new: &MasterKey, now: Timestamp) -> Result<usize, VaultError> {
        let mut resealed = Vec::new();
        for sealed in self.store.secrets().await? {
            let value = self.key.open(&sealed)?;
            let mut next = new.seal(&sealed.name, value.expose_secret(), now)?;
            next.created_at = sealed.created_at;
            resealed.push(next);
        }
        self.store.put_secrets(&resealed).await?;
        Ok(resealed.len())
    }
}

/// The names in the vault; needs no key.
pub async fn list(store: &dyn Store) -> Result<Vec<SecretInfo>, StoreError> {
    Ok(store
        .secrets()
        .await?
        .into_iter()
        .map(|s| SecretInfo {
            name: s.name,
            key_id: s.key_id,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
        .collect())
}

/// Every secret field of the settings, by its configuration key.
fn secret_fields(settings: &mut Settings) -> Vec<(String, &mut SecretString)> {
    use crate::alert::ReceiverSettings;
    let mut fields: Vec<(String, &mut SecretString)> = vec![
        ("ingest.token".into(), &mut settings.ingest.token),
        ("crm.token".into(), &mut settings.crm.token),
        (
            "crm.oauth_client_secret".into(),
            &mut settings.crm.oauth_client_secret,
        ),
        (
            "crm.oauth_refresh_token".into(),
            &mut settings.crm.oauth_refresh_token,
        ),
        ("erp.password".into(), &mut settings.erp.password),
        ("tryton.password".into(), &mut settings.tryton.password),
        ("llm.api_key".into(), &mut settings.llm.api_key),
    ];
    for (i, receiver) in settings.alerting.receivers.iter_mut().enumerate() {
        let at = |key: &str| format!("alerting.receivers[{i}].{key}");
        match receiver {
            ReceiverSettings::Email(s) => fields.push((at("password"), &mut s.password)),
            ReceiverSettings::Webhook(s) => {
                fields.push((at("url"), &mut s.url));
                fields.push((at("secret"), &mut s.secret));
            }
            ReceiverSettings::Slack(s) | ReceiverSettings::Teams(s) => {
                fields.push((at("url"), &mut s.url))
            }
            ReceiverSettings::Pagerduty(s) => fields.push((at("routing_key"), &mut s.routing_key)),
        }
    }
    fields
}

/// Replaces every `vault:NAME` secret of the settings by the secret NAME from the store. Opens
/// neither the store nor the key when no field refers to the vault.
pub async fn resolve_settings(settings: &mut Settings) -> Result<(), VaultError> {
    let vault_settings = settings.vault.clone();
    let url = settings.database_url();
    let database = settings.database.clone();
    let mut references: Vec<(String, String, &mut SecretString)> = secret_fields(settings)
        .into_iter()
        .filter_map(|(field, value)| {
            let name = value.expose_secret().strip_prefix(REFERENCE_PREFIX)?;
            Some((field, name.to_string(), value))
        })
        .collect();
    if references.is_empty() {
        return Ok(());
    }
    let in_field = |field: &str, source: VaultError| VaultError::Field {
        field: field.to_string(),
        source: Box::new(source),
    };
    let key = MasterKey::load(&vault_settings).map_err(|e| in_field(&references[0].0, e))?;
    let store = crate::store::connect(&url, &database).await?;
    store.migrate().await?;
    let vault = Vault::new(store.clone(), key);
    let mut result = Ok(());
    for (field, name, value) in references.iter_mut() {
        match vault.get(name).await {
            Ok(secret) => **value = secret,
            Err(e) => {
                result = Err(in_field(field, e));
                break;
            }
        }
    }
    store.close().await;
    result
}

/// `syncwarden secret ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Store a secret; its value is read from stdin (one line, or all of it when piped).
    Set {
        name: String,
    },
    /// The names of the secrets (never their values).
    List,
    Delete {
        name: String,
    },
    /// Re-encrypt every secret under a new master key (base64 of 32 bytes in FILE); then use that
    /// key in SYNCWARDEN_MASTER_KEY or vault.key_file.
    Rotate {
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
    /// Print a new random master key (base64).
    GenerateKey,
}

pub async fn run_command(settings: &Settings, which: SecretCommand) -> anyhow::Result<()> {
    use std::io::Read;
    if let SecretCommand::GenerateKey = which {
        println!("{}", MasterKey::generate());
        return Ok(());
    }
    let store = crate::startup::open_store(settings).await?;
    let now = crate::clock::Clock::system().now();
    let key = || MasterKey::load(&settings.vault);
    match which {
        SecretCommand::GenerateKey => {}
        SecretCommand::Set { name } => {
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value)?;
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let value = value.strip_suffix('\r').unwrap_or(value);
            anyhow::ensure!(!value.is_empty(), "no value for secret `{name}` on stdin");
            Vault::new(store.clone(), key()?)
                .set(&name, value, now)
                .await?;
            eprintln!("secret `{name}` stored; refer to it as \"{REFERENCE_PREFIX}{name}\"");
        }
        SecretCommand::List => {
            println!(
                "{}",
                serde_json::to_string_pretty(&list(store.as_ref()).await?)?
            );
        }
        SecretCommand::Delete { name } => {
            anyhow::ensure!(
                store.delete_secret(&name).await?,
                "no secret named `{name}`"
            );
            eprintln!("secret `{name}` deleted");
        }
        SecretCommand::Rotate { new_key_file } => {
            let new = MasterKey::from_file(&new_key_file)?;
            let n = Vault::new(store.clone(), key()?).rotate(&new, now).await?;
            eprintln!("{n} secrets re-encrypted under key {}", new.id());
        }
    }
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate(), "test").unwrap()
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_the_name() {
        let key = key();
        let now = Timestamp::from_micros(1);
        let sealed = key.seal("hubspot_token", "pat-123", now).unwrap();
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"pat-123"));
        assert_eq!(key.open(&sealed).unwrap().expose_secret(), "pat-123");
        let moved = SealedSecret {
            name: "other".into(),
            ..sealed.clone()
        };
        assert!(matches!(
            key.open(&moved),
            Err(VaultError::Undecryptable(_))
        ));
        let other = self::key();
        let err = other.open(&sealed).unwrap_err().to_string();
        assert!(
            err.contains("hubspot_token") && err.contains(key.id()),
            "{err}"
        );
    }

    #[test]
    fn bad_keys_are_named() {
        let err = MasterKey::from_base64("c2hvcnQ=", KEY_ENV).unwrap_err();
        assert!(err.to_string().contains(KEY_ENV), "{err}");
        assert!(err.to_string().contains("5 bytes"), "{err}");
        assert!(check_name("crm token").is_err());
        assert!(check_name("crm.token-2_x").is_ok());
    }
}
