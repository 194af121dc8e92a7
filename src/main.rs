use std::process::ExitCode;

use clap::Parser;
use connector_hub::app::{self, Server};
use connector_hub::config::{AuditAction, Cli, Command, KeysAction, LogFormat, ServeConfig};
use connector_hub::crypto::MasterKey;
use connector_hub::domain::audit::{Actor, AuditEvent, Outcome, action as audit_action};
use connector_hub::domain::clock::Clock;
use connector_hub::http::audit::AuditLog;
use connector_hub::store::{Store, audit};

/// mimalloc: the server allocates many small, short-lived buffers per request, where it is
/// faster than glibc's allocator and keeps the resident set smaller under concurrency.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same index in mimalloc 2 and 3); the sys crate
/// names only the options before it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[tokio::main]
async fn main() -> ExitCode {
    // Give freed memory back at once rather than after a delay: each password hash briefly
    // takes 19 MiB (argon2id), which would otherwise stay resident.
    // SAFETY: sets a process-wide allocator option; mimalloc allows it at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    disable_transparent_huge_pages();
    connector_hub::install_crypto_provider();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc asks for transparent huge pages for its arenas, and a huge page is resident as a
/// whole (2 MiB) however little of it is used: with a small heap, that is megabytes of RSS for
/// nothing. Asked of the kernel for the whole process, whatever mimalloc's version.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(Box::new(ServeConfig::from_env())))
    {
        Command::Serve(config) => {
            app::init_tracing(config.log_format, &config.log);
            let server = Server::build(*config).await.map_err(|e| e.to_string())?;
            server
                .run(app::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Keys { storage, action } => {
            app::init_tracing(LogFormat::Text, "warn");
            let store = app::open_store(&storage).await.map_err(|e| e.to_string())?;
            let audit_log = app::command_audit_log(&store, &storage).map_err(|e| e.to_string())?;
            let keyring = app::open_keyring(&storage, &store, Clock::default())
                .await
                .map_err(|e| e.to_string())?;
            let print = |value: serde_json::Value| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).expect("JSON prints")
                );
            };
            let record = |name: &str| {
                AuditEvent::new(
                    Actor::operator(),
                    name,
                    Outcome::Success,
                    chrono::Utc::now(),
                )
            };
            match action {
                KeysAction::Status => print(serde_json::json!(
                    keyring.status().await.map_err(|e| e.to_string())?
                )),
                KeysAction::Rotate => {
                    let id = keyring
                        .rotate(record(audit_action::KEY_ROTATED))
                        .await
                        .map_err(|e| e.to_string())?;
                    print(serde_json::json!({ "active_key": id }));
                }
                KeysAction::Rewrap { batch_size } => {
                    let report = keyring
                        .rewrap(batch_size, &record(audit_action::KEY_REWRAPPED))
                        .await
                        .map_err(|e| e.to_string())?;
                    print(serde_json::json!(report));
                }
                KeysAction::Remove { key_id } => {
                    keyring
                        .remove(key_id, record(audit_action::KEY_REMOVED))
                        .await
                        .map_err(|e| e.to_string())?;
                    print(serde_json::json!({ "removed": key_id }));
                }
                KeysAction::RotateMaster { new_key_file } => {
                    let new_key = MasterKey::read_file(&new_key_file).map_err(|e| e.to_string())?;
                    let count = keyring
                        .rotate_master(&new_key, record(audit_action::MASTER_KEY_ROTATED))
                        .await
                        .map_err(|e| e.to_string())?;
                    print(
                        serde_json::json!({ "rewrapped_data_keys": count, "master_key_id": new_key.id() }),
                    );
                }
            }
            // The operator's records are chained now rather than by the next server's sweep.
            audit_log.chain_now().await.map_err(|e| e.to_string())?;
            Ok(())
        }
        Command::Audit { storage, action } => {
            app::init_tracing(LogFormat::Text, "warn");
            let store = app::open_store(&storage).await.map_err(|e| e.to_string())?;
            let audit_log = app::command_audit_log(&store, &storage).map_err(|e| e.to_string())?;
            let result = audit_command(&store, &audit_log, action).await;
            store.close().await;
            result
        }
        Command::Openapi => {
            print!("{}", connector_hub::http::openapi::document());
            Ok(())
        }
        Command::Health { url } => health_check(&url).await,
    }
}

/// `connector-hub health`: one GET, bounded by a timeout, succeeding only on 200.
async fn health_check(url: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    match response.status() {
        reqwest::StatusCode::OK => Ok(()),
        status => Err(format!(
            "{url} answered {status}: {}",
            response.text().await.unwrap_or_default()
        )),
    }
}

/// `connector-hub audit verify` and `audit purge`: each chains what is pending first.
async fn audit_command(
    store: &Store,
    audit_log: &AuditLog,
    action: AuditAction,
) -> Result<(), String> {
    let report = |value: serde_json::Value| {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON prints")
        );
    };
    audit_log.chain_now().await.map_err(|e| e.to_string())?;
    match action {
        AuditAction::Verify => {
            let verification = audit::verify(store).await.map_err(|e| e.to_string())?;
            report(serde_json::json!(verification));
            match verification.first_mismatch {
                None => Ok(()),
                Some(mismatch) => Err(format!(
                    "the audit log does not verify: record {}{} {}",
                    mismatch.chain_seq,
                    mismatch.id.map(|id| format!(" ({id})")).unwrap_or_default(),
                    mismatch.reason
                )),
            }
        }
        AuditAction::Purge { before } => {
            let before = chrono::DateTime::parse_from_rfc3339(&before)
                .map(|at| at.to_utc())
                .ok()
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(&before, "%Y-%m-%d")
                        .ok()
                        .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
                })
                .ok_or_else(|| format!("--before must be a date or a time, not '{before}'"))?;
            let now = chrono::Utc::now();
            let event = AuditEvent::new(
                Actor::operator(),
                audit_action::AUDIT_PURGED,
                Outcome::Success,
                now,
            );
            let removed = audit::purge(store, before, event)
                .await
                .map_err(|e| e.to_string())?;
            audit_log.chain_now().await.map_err(|e| e.to_string())?;
            report(serde_json::json!({ "removed": removed }));
            Ok(())
        }
    }
}
