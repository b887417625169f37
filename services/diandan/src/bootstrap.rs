//! Setting up an organisation on any store, before (or while) its parts run:
//! `diandan org bootstrap` (the centre and its first centre admin) and `diandan demo` (the demo
//! district). Both run the services in this process for a moment — over the same `--store`
//! and `--data-dir` as the parts of the deployment — and act through their gRPC API as the
//! system itself, so every rule, event and read model is exactly what the services make. No
//! token leaves the process.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::{Endpoint, Server};

use diandan_proto::v1 as pb;
use diandan_proto::Upstreams;
use diandan_runtime::auth::TokenSigner;
use diandan_store::EventStore;
use diandan_workflows::Role;

use crate::client::Client;
use crate::server::{app_over, grpc_incoming, grpc_routes, workflows, GrpcService};

/// Runs `act` against the services over `store` (a `--store` URL), in this process, and stops
/// them. The read models in `data_dir` are kept current meanwhile (whether or not a
/// projections part runs too: applying is idempotent by position).
pub async fn with_services<T, F, Fut>(store: &str, data_dir: &Path, act: F) -> anyhow::Result<T>
where
    F: FnOnce(Upstreams, TokenSigner, Arc<dyn EventStore>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let store = crate::serve::open_store(store).await?;
    let app = app_over(store.clone(), data_dir, false, workflows(None)?)?;
    let routes = grpc_routes(&app, GrpcService::ALL).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(grpc_incoming(listener), until_stopped(stopped.clone())),
    );
    let follow = tokio::spawn(
        app.read
            .clone()
            .follow_owned(store, until_stopped(stopped.clone())),
    );
    let result = async {
        let channel = Endpoint::from_shared(format!("http://{address}"))?
            .connect()
            .await
            .context("connecting to the in-process services")?;
        act(
            Upstreams::single(channel),
            app.signer.clone(),
            app.store.clone(),
        )
        .await
    }
    .await;
    let _ = stop.send(true);
    server.await??;
    follow.await?;
    result
}

/// The system itself, signed in to the in-process services.
fn system(upstreams: Upstreams, signer: &TokenSigner) -> Client {
    Client::new(
        upstreams,
        crate::demo::token(signer, "bootstrap", Role::System, None),
    )
}

/// What `diandan org bootstrap` sets up.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub centre_id: String,
    pub centre_name: String,
    pub admin_username: String,
    pub admin_name: String,
    pub admin_password: String,
}

/// What bootstrapping found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrapped {
    pub centre_created: bool,
    pub admin_created: bool,
    pub admin_account_id: String,
}

/// Registers the centre and opens its first centre admin's account. Running it again changes
/// nothing and says so (both already exist).
pub async fn bootstrap(
    upstreams: Upstreams,
    signer: TokenSigner,
    what: Bootstrap,
) -> anyhow::Result<Bootstrapped> {
    // Everything is checked before anything is written: a refused bootstrap leaves no centre
    // without its admin behind.
    let refused = |e: diandan_workflows::DomainError| anyhow::anyhow!("{e}");
    diandan_workflows::validate::id("centre_id", &what.centre_id).map_err(refused)?;
    diandan_workflows::account::username(&what.admin_username).map_err(refused)?;
    diandan_workflows::account::new_password("admin_password", &what.admin_password)
        .map_err(refused)?;
    let system = system(upstreams, &signer);
    let node = pb::RegisterOrgNodeRequest {
        id: what.centre_id.clone(),
        name: what.centre_name.clone(),
        level: "centre".into(),
        parent_id: String::new(),
        location: None,
    };
    let centre_created = match system
        .organization()
        .register_org_node(system.request(node, None))
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == tonic::Code::AlreadyExists => false,
        Err(status) if status.code() == tonic::Code::Aborted => false,
        Err(status) => return Err(status_error("registering the centre", status)),
    };
    let account = pb::CreateAccountRequest {
        username: what.admin_username.clone(),
        display_name: what.admin_name.clone(),
        role: Role::CentreAdmin.as_str().into(),
        node_id: what.centre_id.clone(),
        password: what.admin_password.clone(),
    };
    let (admin_created, admin_account_id) = match system
        .accounts()
        .create_account(system.request(account, None))
        .await
    {
        Ok(created) => (true, created.into_inner().account_id),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::AlreadyExists | tonic::Code::Aborted
            ) =>
        {
            (
                false,
                diandan_workflows::account::staff_account_id(&what.admin_username),
            )
        }
        Err(status) => return Err(status_error("opening the centre admin's account", status)),
    };
    Ok(Bootstrapped {
        centre_created,
        admin_created,
        admin_account_id,
    })
}

/// Seeds the demo district unless the store already holds events; returns the orders placed.
pub async fn demo(
    upstreams: Upstreams,
    signer: TokenSigner,
    store: Arc<dyn EventStore>,
) -> anyhow::Result<usize> {
    if store.head_position().await? > 0 {
        return Ok(0);
    }
    crate::demo::seed(upstreams, &signer).await
}

fn status_error(what: &str, status: tonic::Status) -> anyhow::Error {
    let field = status
        .metadata()
        .get("x-diandan-field")
        .and_then(|f| f.to_str().ok())
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    anyhow::anyhow!("{what}: {}{field}", status.message())
}

/// `diandan residents forget`: has a resident forgotten through the same command the API runs
/// (as the system); answers when, and the log position of the record.
pub async fn forget_resident(
    upstreams: Upstreams,
    signer: TokenSigner,
    resident_id: String,
    reason: String,
) -> anyhow::Result<pb::ForgetResidentResponse> {
    let system = system(upstreams, &signer);
    let request = pb::ForgetResidentRequest {
        resident_id,
        reason,
    };
    let reply = system
        .accounts()
        .forget_resident(system.request(request, None))
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    Ok(reply.into_inner())
}
