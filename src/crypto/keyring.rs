//! The keyring: loads data keys by id on demand, knows which one is active, counts encryptions,
//! and rotates keys without downtime. Several processes may share one database; each re-reads
//! the active key id every `refresh` interval and loads any key it has not seen when a value
//! names it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, aes::cipher::generic_array::GenericArray};
use chrono::{DateTime, Utc};
use rand_core::RngCore;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::envelope::{self, Aad};
use super::master::{KEY_LEN, MasterKey};
use super::{CryptoError, CryptoResult};
use crate::domain::audit::{Actor, AuditEvent, Outcome, Target, action};
use crate::domain::clock::Clock;
use crate::metrics::CryptoMetrics;
use crate::store::data_keys::{self, DataKeyRow, SealedTable, StaleValue};
use crate::store::{Store, StoreError, audit};

#[derive(Debug, Clone)]
pub struct KeyringSettings {
    pub refresh: Duration,
    pub max_encryptions: u64,
}

/// One data key's state, as `keys status` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyStatus {
    pub id: Uuid,
    pub active: bool,
    pub created: DateTime<Utc>,
    pub retired: Option<DateTime<Utc>>,
    /// Encryptions reserved under this key (an upper bound of those performed).
    pub encryptions: i64,
    /// Stored values this key protects now.
    pub values: i64,
    pub master_key_id: String,
}

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct RewrapReport {
    pub active_key: Uuid,
    /// Values re-encrypted under the active key.
    pub rewrapped: u64,
    /// Values still under an older key (written by a process that had not yet seen the rotation).
    pub remaining: u64,
}

struct ActiveKey {
    id: Uuid,
    cipher: Arc<Aes256Gcm>,
    checked: Instant,
    /// Encryptions still reserved for this process under the active key.
    budget: u64,
    /// The key has reached its encryption limit: rotate once the budget is spent.
    exhausted: bool,
}

/// A backup's data keys, unwrapped, from [`Keyring::backup_keys`].
pub struct BackupKeys {
    ciphers: HashMap<Uuid, Aes256Gcm>,
}

pub struct Keyring {
    store: Store,
    /// The current master key first, then the previous one during a master-key rotation.
    masters: Vec<MasterKey>,
    settings: KeyringSettings,
    clock: Clock,
    ciphers: RwLock<HashMap<Uuid, Arc<Aes256Gcm>>>,
    active: tokio::sync::Mutex<ActiveKey>,
    counts: CryptoMetrics,
}

impl Keyring {
    /// Opens the keyring, creating the first data key in a new database. Fails when the master
    /// key does not match the one the data keys are wrapped with.
    pub async fn open(
        store: Store,
        master: MasterKey,
        previous: Option<MasterKey>,
        settings: KeyringSettings,
        clock: Clock,
    ) -> CryptoResult<Keyring> {
        let masters: Vec<MasterKey> = std::iter::once(master).chain(previous).collect();
        let mut conn = store.conn().await?;
        let keys = data_keys::all(&mut conn).await?;
        if let Some(unknown) = keys
            .iter()
            .find(|k| !masters.iter().any(|m| m.id() == k.master_key_id))
        {
            return Err(CryptoError::WrongMasterKey {
                configured: masters[0].id().to_owned(),
                expected: unknown.master_key_id.clone(),
            });
        }
        drop(conn);

        let placeholder = ActiveKey {
            id: Uuid::nil(),
            cipher: Arc::new(Aes256Gcm::new(&[0u8; KEY_LEN].into())),
            checked: Instant::now(),
            budget: 0,
            exhausted: false,
        };
        let keyring = Keyring {
            store,
            masters,
            settings,
            clock,
            ciphers: RwLock::new(HashMap::new()),
            active: tokio::sync::Mutex::new(placeholder),
            counts: CryptoMetrics::default(),
        };
        if !keys.iter().any(|k| k.active) {
            let record = keyring.system_record(action::KEY_ROTATED);
            keyring
                .create_active_key(Replacing::Nothing, record)
                .await?;
        }
        {
            let mut active = keyring.active.lock().await;
            keyring.refresh_active(&mut active).await?;
        }
        Ok(keyring)
    }

    fn master_for(&self, id: &str) -> Option<&MasterKey> {
        self.masters.iter().find(|m| m.id() == id)
    }

    fn cached(&self, id: Uuid) -> Option<Arc<Aes256Gcm>> {
        self.ciphers
            .read()
            .expect("keyring cache poisoned")
            .get(&id)
            .cloned()
    }

    /// The cipher of data key `id`, loaded and unwrapped on first use.
    async fn cipher(&self, id: Uuid) -> CryptoResult<Arc<Aes256Gcm>> {
        if let Some(cipher) = self.cached(id) {
            return Ok(cipher);
        }
        let mut conn = self.store.conn().await?;
        let row = data_keys::get(&mut conn, id)
            .await?
            .ok_or(CryptoError::UnknownKey(id))?;
        let cipher = Arc::new(self.unwrap_row(&row)?);
        self.ciphers
            .write()
            .expect("keyring cache poisoned")
            .insert(id, cipher.clone());
        Ok(cipher)
    }

    /// Whether the keyring can encrypt now: the database answers and names an active data key,
    /// and this process holds it or can unwrap it. What `/ready` asks.
    pub async fn check_ready(&self) -> CryptoResult<()> {
        let id = self.stored_active_id().await?;
        self.cipher(id).await.map(|_| ())
    }

    /// The id of the data key the database names active.
    async fn stored_active_id(&self) -> CryptoResult<Uuid> {
        let mut conn = self.store.conn().await?;
        Ok(data_keys::active_id(&mut conn)
            .await?
            .ok_or(StoreError::NotFound)?)
    }

    fn unwrap_row(&self, row: &DataKeyRow) -> CryptoResult<Aes256Gcm> {
        let master =
            self.master_for(&row.master_key_id)
                .ok_or_else(|| CryptoError::WrongMasterKey {
                    configured: self.masters[0].id().to_owned(),
                    expected: row.master_key_id.clone(),
                })?;
        let bytes = master.unwrap(row.id, &row.wrapped)?;
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::Format);
        }
        Ok(Aes256Gcm::new(GenericArray::from_slice(&bytes)))
    }

    /// A record of something the server did on its own.
    fn system_record(&self, action: &str) -> AuditEvent {
        AuditEvent::new(Actor::system(), action, Outcome::Success, self.clock.now())
    }

    /// Re-reads which key is active and switches to it if it changed.
    async fn refresh_active(&self, active: &mut ActiveKey) -> CryptoResult<()> {
        let id = self.stored_active_id().await?;
        if id != active.id {
            active.cipher = self.cipher(id).await?;
            active.id = id;
            active.budget = 0;
            active.exhausted = false;
        }
        active.checked = Instant::now();
        Ok(())
    }

    /// Makes a fresh data key active. When another process rotates (or, on an empty database,
    /// makes the first key) at the same moment, its key wins and ours is discarded: either way
    /// one new key is active afterwards.
    async fn create_active_key(
        &self,
        replacing: Replacing,
        record: AuditEvent,
    ) -> CryptoResult<()> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        let id = Uuid::new_v4();
        let row = DataKeyRow {
            id,
            wrapped: self.masters[0].wrap(id, bytes.as_ref()),
            master_key_id: self.masters[0].id().to_owned(),
            active: true,
            encryptions: 0,
            created: self.clock.now(),
            retired: None,
        };
        let mut tx = self.store.begin().await?;
        let made = match replacing {
            Replacing::TheActiveKey => data_keys::activate_new(&mut tx, &row).await.map(|()| true),
            Replacing::Nothing => data_keys::activate_first(&mut tx, &row).await,
        };
        match made {
            Ok(false) => {
                tracing::info!("another process made the first data key concurrently");
                Ok(())
            }
            Ok(true) => {
                let record = record.on(Target::id_only("data_key", id));
                audit::append(&mut tx, &record).await?;
                tx.commit().await?;
                tracing::info!(key_id = %id, "a new data key is active");
                Ok(())
            }
            Err(StoreError::Conflict(_)) => {
                tracing::info!("another process rotated the data key concurrently");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How many encryptions a process reserves at once: small limits (tests) are honoured
    /// exactly, large ones cost one database write per thousand encryptions.
    fn reservation_block(&self) -> u64 {
        (self.settings.max_encryptions / 1000).clamp(1, 1000)
    }

    /// The key to encrypt with now, with one encryption counted against it.
    async fn take_active(&self) -> CryptoResult<(Uuid, Arc<Aes256Gcm>)> {
        let mut active = self.active.lock().await;
        loop {
            if active.checked.elapsed() >= self.settings.refresh {
                self.refresh_active(&mut active).await?;
            }
            if active.budget > 0 {
                active.budget -= 1;
                return Ok((active.id, active.cipher.clone()));
            }
            if active.exhausted {
                let record = self
                    .system_record(action::KEY_ROTATED)
                    .with_details(serde_json::json!({"reason": "encryption limit reached"}));
                self.create_active_key(Replacing::TheActiveKey, record)
                    .await?;
                self.refresh_active(&mut active).await?;
                continue;
            }
            let block = self.reservation_block();
            let mut conn = self.store.write_conn().await?;
            let reserved = data_keys::reserve(&mut conn, active.id, block as i64).await?;
            drop(conn);
            match reserved {
                None => self.refresh_active(&mut active).await?,
                Some(total) => {
                    let total = total.max(0) as u64;
                    let before = total.saturating_sub(block);
                    let usable = self
                        .settings
                        .max_encryptions
                        .saturating_sub(before)
                        .min(block);
                    active.budget = usable;
                    active.exhausted = total >= self.settings.max_encryptions;
                    if active.exhausted {
                        tracing::info!(key_id = %active.id, "data key reached its encryption limit");
                    }
                }
            }
        }
    }

    /// Encrypts `plaintext` for the place `aad` names, under the active data key.
    pub async fn encrypt(&self, aad: &Aad<'_>, plaintext: &[u8]) -> CryptoResult<(Uuid, Vec<u8>)> {
        let (id, cipher) = self.take_active().await?;
        self.counts.encryptions.inc();
        Ok((id, envelope::seal(id, &cipher, aad, plaintext)))
    }

    pub async fn decrypt(&self, aad: &Aad<'_>, sealed: &[u8]) -> CryptoResult<Zeroizing<Vec<u8>>> {
        let cipher = self.cipher(envelope::key_id(sealed)?).await?;
        self.counts.decryptions.inc();
        envelope::open(&cipher, aad, sealed)
    }

    /// Counts this keyring's encryptions and decryptions in `counts`.
    pub fn counted(mut self, counts: CryptoMetrics) -> Keyring {
        self.counts = counts;
        self
    }

    /// A backup's data keys that are not stored here, unwrapped, so that its values can be
    /// checked before any of it is stored. Each must be wrapped by a master key this server
    /// has: one that is not would stop every process from starting once stored.
    pub async fn backup_keys(&self, keys: &[DataKeyRow]) -> CryptoResult<BackupKeys> {
        let mut ciphers = HashMap::new();
        let mut conn = self.store.conn().await?;
        for key in keys {
            if data_keys::get(&mut conn, key.id).await?.is_none() {
                ciphers.insert(key.id, self.unwrap_row(key)?);
            }
        }
        Ok(BackupKeys { ciphers })
    }

    /// Decrypts a backup's value under the backup's own keys or the ones stored here.
    pub async fn decrypt_backup(
        &self,
        keys: &BackupKeys,
        aad: &Aad<'_>,
        sealed: &[u8],
    ) -> CryptoResult<Zeroizing<Vec<u8>>> {
        match keys.ciphers.get(&envelope::key_id(sealed)?) {
            Some(cipher) => envelope::open(cipher, aad, sealed),
            None => self.decrypt(aad, sealed).await,
        }
    }

    /// Makes a new data key active (used by this process at once, by others within the refresh
    /// interval). Older keys keep decrypting.
    /// `record` (of `key.rotated`) is written with the new key, naming it.
    pub async fn rotate(&self, record: AuditEvent) -> CryptoResult<Uuid> {
        let mut active = self.active.lock().await;
        self.create_active_key(Replacing::TheActiveKey, record)
            .await?;
        self.refresh_active(&mut active).await?;
        Ok(active.id)
    }

    pub async fn status(&self) -> CryptoResult<Vec<KeyStatus>> {
        let mut conn = self.store.conn().await?;
        let keys = data_keys::all(&mut conn).await?;
        let usage: HashMap<Uuid, i64> = data_keys::usage(&mut conn).await?.into_iter().collect();
        Ok(keys
            .into_iter()
            .map(|k| KeyStatus {
                values: usage.get(&k.id).copied().unwrap_or(0),
                id: k.id,
                active: k.active,
                created: k.created,
                retired: k.retired,
                encryptions: k.encryptions,
                master_key_id: k.master_key_id,
            })
            .collect())
    }

    /// Re-encrypts, batch by batch, every value under a key other than the active one. A value
    /// written concurrently is left to its writer (compare-and-swap on its revision). Running it
    /// again resumes where it stopped.
    /// Each batch's transaction also writes a copy of `record` (of `key.rewrapped`), with the
    /// count it re-encrypted.
    pub async fn rewrap(&self, batch_size: u32, record: &AuditEvent) -> CryptoResult<RewrapReport> {
        let mut active_key = {
            let mut active = self.active.lock().await;
            self.refresh_active(&mut active).await?;
            active.id
        };
        let batch_size = batch_size.max(1);
        let mut rewrapped = 0;
        for table in SealedTable::ALL {
            loop {
                let mut conn = self.store.conn().await?;
                let stale =
                    data_keys::stale_values(&mut conn, table, active_key, batch_size).await?;
                drop(conn);
                if stale.is_empty() {
                    break;
                }
                // Encrypt before opening the write transaction: the keyring may need a
                // connection of its own to count encryptions.
                let mut resealed = Vec::with_capacity(stale.len());
                for value in &stale {
                    let aad = sealed_aad(table, value);
                    let plaintext = self.decrypt(&aad, &value.ciphertext).await?;
                    resealed.push(self.encrypt(&aad, &plaintext).await?);
                }
                // A rotation during the batch moves the target to the newer key.
                if let Some((newest, _)) = resealed.last() {
                    active_key = *newest;
                }
                let mut tx = self.store.begin().await?;
                let mut in_batch = 0;
                for (value, (key_id, ciphertext)) in stale.iter().zip(&resealed) {
                    if data_keys::swap_ciphertext(&mut tx, table, value, ciphertext, *key_id)
                        .await?
                    {
                        in_batch += 1;
                    }
                }
                let batch_record = record
                    .again(self.clock.now())
                    .on(Target::id_only("data_key", active_key))
                    .with_details(serde_json::json!({"rewrapped": in_batch}));
                audit::append(&mut tx, &batch_record).await?;
                tx.commit().await?;
                rewrapped += in_batch;
            }
        }
        let mut report = RewrapReport {
            active_key,
            rewrapped,
            remaining: 0,
        };
        report.remaining = self
            .status()
            .await?
            .iter()
            .filter(|k| k.id != active_key)
            .map(|k| k.values as u64)
            .sum();
        Ok(report)
    }

    /// Removes a retired key that protects no value.
    /// `record` (of `key.removed`) is written with the removal.
    pub async fn remove(&self, id: Uuid, record: AuditEvent) -> CryptoResult<()> {
        let mut tx = self.store.begin().await?;
        let existed = data_keys::get(&mut tx, id).await?.is_some();
        if !existed {
            return Err(CryptoError::NoSuchKey(id));
        }
        if !data_keys::delete_unused(&mut tx, id).await? {
            return Err(CryptoError::KeyInUse(id));
        }
        audit::append(&mut tx, &record.on(Target::id_only("data_key", id))).await?;
        tx.commit().await?;
        self.ciphers
            .write()
            .expect("keyring cache poisoned")
            .remove(&id);
        Ok(())
    }

    /// Re-wraps every data key under `new_master`, in one transaction. Values are untouched.
    /// `record` (of `key.master_rotated`) is written with the re-wrapped keys.
    pub async fn rotate_master(
        &self,
        new_master: &MasterKey,
        record: AuditEvent,
    ) -> CryptoResult<usize> {
        let mut tx = self.store.begin().await?;
        let keys = data_keys::all(&mut tx).await?;
        for key in &keys {
            let master =
                self.master_for(&key.master_key_id)
                    .ok_or_else(|| CryptoError::WrongMasterKey {
                        configured: self.masters[0].id().to_owned(),
                        expected: key.master_key_id.clone(),
                    })?;
            let bytes = master.unwrap(key.id, &key.wrapped)?;
            let wrapped = new_master.wrap(key.id, &bytes);
            data_keys::set_wrapped(&mut tx, key.id, &wrapped, new_master.id()).await?;
        }
        let record = record
            .on(Target::id_only("master_key", new_master.id()))
            .with_details(serde_json::json!({"data_keys": keys.len()}));
        audit::append(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(keys.len())
    }
}

/// What a new active data key replaces.
#[derive(Debug, Clone, Copy)]
enum Replacing {
    /// None is active yet (first start); another process may be making the first one.
    Nothing,
    TheActiveKey,
}

/// Where each kind of sealed value belongs: the associated data its ciphertext is bound to.
pub fn sealed_aad(table: SealedTable, value: &StaleValue) -> Aad<'_> {
    match table {
        SealedTable::Secrets => secret_aad(value.workspace_id.unwrap_or_default(), value.id),
        SealedTable::ServerSecrets => server_secret_aad(value.id, &value.name),
    }
}

pub fn secret_aad(workspace: Uuid, secret: Uuid) -> Aad<'static> {
    Aad {
        table: "secrets",
        workspace,
        record: secret,
        field: "values",
    }
}

pub fn server_secret_aad(id: Uuid, name: &str) -> Aad<'_> {
    Aad {
        table: "server_secrets",
        workspace: Uuid::nil(),
        record: id,
        field: name,
    }
}
