//! Argon2id password hashes in PHC string form. Hashing and verifying are CPU- and
//! memory-heavy: run them through [`off_thread`].

use std::sync::LazyLock;

use tokio::sync::Semaphore;
use tokio::task::JoinError;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// How many hashes may run at once: one per core. Each takes 19 MiB (argon2id's memory cost),
/// so a burst of logins queues here instead of multiplying the server's memory, and the async
/// threads stay free for other requests.
fn hashing_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

static HASHING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(hashing_slots()));

/// Runs `work` (a [`hash`] or [`verify`]) on a blocking thread once a hashing slot is free.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JoinError> {
    let _slot = HASHING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work).await
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters cannot fail")
        .to_string()
}

/// Checks `password` against `stored`. Without a stored hash (unknown user, or an account that
/// has no password) it still spends the same work on a dummy hash, so response times do not
/// reveal which user names exist.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    static DUMMY: LazyLock<String> = LazyLock::new(|| hash("not a real password"));
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// A random password for the generated admin account: 24 characters, about 143 bits.
pub fn generate() -> String {
    use rand_core::RngCore;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify(Some(&stored), "correct horse"));
        assert!(!verify(Some(&stored), "wrong horse"));
        assert!(!verify(None, "not a real password"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_there_are_slots() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4 * hashing_slots())
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(off_thread(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let stored = hash(&format!("password {i}"));
                    running.fetch_sub(1, Ordering::SeqCst);
                    stored
                }))
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().unwrap().starts_with("$argon2id$"));
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=hashing_slots()).contains(&most),
            "{most} hashes ran at once"
        );
    }

    #[test]
    fn generated_passwords_differ() {
        assert_ne!(generate(), generate());
        assert_eq!(generate().len(), 24);
    }
}
