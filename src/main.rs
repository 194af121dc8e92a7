use std::process::ExitCode;

use clap::Parser;
use connector_hub::app::{self, Server};
use connector_hub::config::{Cli, Command, KeysAction, LogFormat, ServeConfig};
use connector_hub::crypto::MasterKey;
use connector_hub::domain::clock::Clock;

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
            let (_, keyring) = app::open_storage(&storage, Clock::default())
                .await
                .map_err(|e| e.to_string())?;
            let print = |value: serde_json::Value| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).expect("JSON prints")
                );
            };
            match action {
                KeysAction::Status => print(serde_json::json!(
                    keyring.status().await.map_err(|e| e.to_string())?
                )),
                KeysAction::Rotate => {
                    let id = keyring.rotate().await.map_err(|e| e.to_string())?;
                    print(serde_json::json!({ "active_key": id }));
                }
                KeysAction::Rewrap { batch_size } => {
                    let report = keyring
                        .rewrap(batch_size)
                        .await
                        .map_err(|e| e.to_string())?;
                    print(serde_json::json!(report));
                }
                KeysAction::Remove { key_id } => {
                    keyring.remove(key_id).await.map_err(|e| e.to_string())?;
                    print(serde_json::json!({ "removed": key_id }));
                }
                KeysAction::RotateMaster { new_key_file } => {
                    let new_key = MasterKey::read_file(&new_key_file).map_err(|e| e.to_string())?;
                    let count = keyring
                        .rotate_master(&new_key)
                        .await
                        .map_err(|e| e.to_string())?;
                    print(
                        serde_json::json!({ "rewrapped_data_keys": count, "master_key_id": new_key.id() }),
                    );
                }
            }
            Ok(())
        }
        Command::Openapi => {
            print!("{}", connector_hub::http::openapi::document());
            Ok(())
        }
    }
}
