//! What every diandan service shares, between the pure domain (`diandan-workflows`) and the
//! transports (gRPC services, the HTTP gateway):
//!
//! - [`App`]: the handle services hold — store, read model, contact vault, directory, signer.
//! - [`commands`]: load a stream → `decide` → append with the expected revision, retrying on
//!   conflict, idempotent by command id.
//! - [`directory`]: org nodes, teams and volunteers, registered as events, cached in memory.
//! - [`projections`]: read models fed from the global log, each checkpointed in the same
//!   transaction as its data, rebuildable from position 0.
//! - [`vault`]: residents' phone numbers, kept out of the event log (PIPL minimisation).
//! - [`views`]: what each role may see of an order.
//! - [`auth`]: bearer tokens (JWT); [`accounts`]: staff and WeChat accounts, sessions with
//!   rotating refresh tokens, lockout; [`context`]: who is calling, from gRPC metadata.
//! - [`error`]: [`AppError`] and its mapping to gRPC status codes.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod auth;
pub mod claims;
pub mod clock;
pub mod commands;
pub mod context;
pub mod directory;
pub mod dispatching;
pub mod error;
pub mod notify;
pub mod order_cache;
pub mod pii;
pub mod projections;
pub mod queries;
pub mod residents;
pub mod retention;
pub mod secrets;
pub mod sqlite_file;
pub mod timers;
pub mod trail;
pub mod vault;
pub mod views;
pub mod wechat;

use std::path::Path;
use std::sync::Arc;

use diandan_store::EventStore;

pub use context::RequestContext;
pub use error::AppError;

/// A result whose error is [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The handle every service holds. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn EventStore>,
    pub read: projections::ReadModel,
    pub vault: vault::ContactVault,
    pub directory: directory::Directory,
    pub signer: auth::TokenSigner,
    /// Whether `DevLogin` issues tokens (development and demos only).
    pub dev_login: bool,
    /// Workflow definitions, every version: an order runs on the one it was placed on.
    pub workflows: Arc<diandan_workflows::Registry>,
    /// What time it is (the system clock, or a test's).
    pub clock: clock::Clock,
    /// Failed sign-ins and their lockouts.
    pub logins: accounts::LoginGuard,
    /// The mini-program's WeChat API (`DIANDAN_WECHAT_APPID`, …), when configured.
    pub wechat: Option<Arc<wechat::WechatClient>>,
    /// The timer runner takes this for reading each round; whoever holds it for writing (the
    /// demo replaying a year of history) pauses it.
    pub timer_hold: Arc<tokio::sync::RwLock<()>>,
    /// The log's witness: its leaves and signed checkpoints (`audit.db`).
    pub witness: diandan_audit::Witness,
    /// Whether personal data is sealed before it is written ([`pii`]): always, except in the
    /// benchmark's baseline that measures what sealing costs.
    pub sealing: bool,
    /// Orders as last folded: a load folds only what they gained since ([`order_cache`]).
    pub orders: order_cache::OrderCache,
    /// Other streams as last folded (the ledger's: a volunteer's hours and points grow with
    /// every service, and were folded whole at each credit).
    pub other_streams: order_cache::OtherStreams,
}

impl App {
    /// Wires an app over a store, keeping the read model and the vault in `data_dir`.
    pub fn open(
        store: Arc<dyn EventStore>,
        data_dir: &Path,
        signer: auth::TokenSigner,
        dev_login: bool,
        workflows: diandan_workflows::Registry,
    ) -> Result<App> {
        let read = projections::ReadModel::open(&data_dir.join("read.db"))?;
        let vault = vault::ContactVault::open(&data_dir.join("private.db"))?;
        let directory = directory::Directory::new(store.clone());
        retention::check_config().map_err(AppError::Storage)?;
        let audit_key = secrets::audit_key(data_dir)
            .map_err(|e| AppError::Storage(format!("the audit signing key: {e}")))?;
        // Parts started together set `audit.db` up one after another, as the other files.
        let witness = sqlite_file::initialize(&data_dir.join("audit.db"), || {
            diandan_audit::Witness::open(data_dir, audit_key)
                .map_err(|e| AppError::Storage(format!("{e:#}")))
        })?;
        Ok(App {
            store,
            read,
            vault,
            directory,
            signer,
            dev_login,
            workflows: Arc::new(workflows),
            clock: clock::Clock::system(),
            logins: accounts::LoginGuard::default(),
            wechat: wechat::WechatApp::from_env().map(|a| Arc::new(wechat::WechatClient::new(a))),
            timer_hold: Arc::default(),
            witness,
            sealing: true,
            orders: order_cache::OrderCache::default(),
            other_streams: order_cache::OtherStreams::default(),
        })
    }
}
